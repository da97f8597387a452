// Wi-Fi station mode. Joins the configured network, rejoins after a drop, and reports when the
// network is usable. Time comes from SNTP once connected, because interval indices need wall time.

export interface WifiOptions {
  ssid: string;
  password: string;
  /** Seconds between attempts after a failed join or a drop. */
  retrySeconds: number;
  sntpServer: string;
  onUp: () => void;
  onDown: (reason: string) => void;
}

/** The board's Wifi module. */
export function wifiModule(): WifiModule {
  return require('Wifi');
}

/** Keeps the station joined to `ssid`, retrying every retrySeconds; calls onUp/onDown on changes. */
export function keepWifiJoined(wifi: WifiModule, options: WifiOptions): void {
  let up = false;
  let retryPending = false;
  const join = function () {
    retryPending = false;
    wifi.connect(options.ssid, { password: options.password }, function (err) {
      if (err) {
        options.onDown(
          'cannot join Wi-Fi "' + options.ssid + '": ' + err + '; retrying in ' + options.retrySeconds + ' s',
        );
        retryLater();
      }
    });
  };
  const retryLater = function () {
    if (retryPending) return;
    retryPending = true;
    setTimeout(join, options.retrySeconds * 1000);
  };
  wifi.on('connected', function () {
    if (up) return;
    up = true;
    wifi.setSNTP(options.sntpServer, 0);
    options.onUp();
  });
  wifi.on('disconnected', function (details) {
    if (!up) return; // a failed join reports through connect's callback
    up = false;
    options.onDown('Wi-Fi dropped' + (details && details.reason ? ' (' + details.reason + ')' : '') + '; rejoining');
    retryLater();
  });
  join();
}
