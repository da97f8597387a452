// Digital inputs. Edge and debounce filtering are left to setWatch, which does them in the
// interpreter from interrupt timestamps (on ESP32 every watched pin also gets the internal pull-up).

export type Edge = 'rising' | 'falling' | 'both';

/** Called once per accepted edge with the edge's time in seconds (getTime() clock). */
export type EdgeListener = (timeSeconds: number) => void;

/** Starts watching a pin; returns a function that stops the watch. */
export type WatchPin = (pin: number, edge: Edge, debounceMs: number, onEdge: EdgeListener) => () => void;

/** Watches a pin with the board's setWatch, repeating, with its own debounce. */
export function watchPin(pin: number, edge: Edge, debounceMs: number, onEdge: EdgeListener): () => void {
  pinMode(pin, 'input_pullup');
  const id = setWatch(
    function (e) {
      onEdge(e.time);
    },
    pin,
    { repeat: true, edge: edge, debounce: debounceMs },
  );
  return function () {
    clearWatch(id);
  };
}
