// The hardware of the espruino-linux board that the Linux build of the interpreter lacks, as JavaScript
// the interpreter runs before the firmware at every boot: the Storage file `.boot0`, which Espruino runs
// after power-on and after every load() ahead of `.bootcde` (src/jsflash.c jsfLoadBootCodeFromFlash), so it
// is in place again after `veilgrid flash` reboots the board. The board rewrites it at every power-on
// (LinuxBoard.powerOn), so a Storage.eraseAll() cannot leave the board without its hardware.
//
// What it supplies, and only that (docs/hil.md says why each is the hardware boundary):
// - I2C: writeTo/readFrom/setup of I2C1 and of software I2C (`new I2C()`, I2C.prototype) forward every
//   transfer synchronously over two named pipes (se.req, se.rsp in the board's folder) to the ATECC608
//   model on the host (se-bridge.ts); the Linux build's own software I2C drives sysfs pins nothing is on.
//   On I2C1 a transfer the bus does not acknowledge throws as the ESP32's targets/esp32/jshardwareI2c.c
//   does; software I2C carries its bitrate with each transfer and, as src/jsi2c.c, never throws for a
//   missing ACK (a read from nobody is 0xFF bytes). readFrom returns a Uint8Array. The firmware's calls
//   stay the same calls.
// - Wifi: the module the ESP32 build has in C, "as present": connect() calls back at once and reports
//   the station connected, on the host's network. Installed with Modules.addCached, so require("Wifi")
//   finds it before looking in Storage, and no Storage file besides `.boot0` is needed.
// - GPIO interrupts for setWatch: this build has no GPIO, so setWatch/clearWatch keep Espruino's own
//   registration (ids, argument checks, "Unknown Watch") and also note each watch here; pin edges come
//   from the host (s0-link.ts) over a local TCP socket as `pin level time` lines, time stamped by the host
//   as the ESP32's interrupt would stamp them, and go through Espruino's edge and debounce rules
//   (src/jsinteractive.c, the same rules as boards/emulator/pins.ts WatchTable).
// - Console input through the main loop: the Linux build reads stdin on a second thread that pushes into
//   the IO queue the main loop pops without a lock (targets/linux/jshardware.c jshInputThread,
//   src/jsdevices.c), and while any socket is open the main loop never sleeps, so the two collide
//   (`ASSERT(len <= 64) FAILED AT src/jsdevices.c`, about one console line in 70 once the firmware's MQTT
//   socket is open; the ESP32's UART interrupt cannot interleave with its main loop like that). So the
//   host sends console input over a socket and this code hands it to the console with USB.inject, 128
//   bytes per turn of the idle loop (the IO queue holds 1024), answering each piece with one byte that
//   says how many it took: the host keeps at most CONSOLE_INPUT_WINDOW bytes unanswered, so an upload at
//   full speed never piles up in this JavaScript string (a 112 KB one did, and ran the board out of
//   JsVars), as a UART's flow control keeps a real board's input. Output stays on stdout, the console
//   device, as it is; so does input before this has run or after reset() (no socket open then).
//
// Written as ES5 the interpreter parses; the host keeps it small, it costs JsVars the ESP32 does not pay.

/** Console input bytes the host sends ahead of what the prelude has handed to the console. */
export const CONSOLE_INPUT_WINDOW = 2048;

/** The Storage file the prelude lives in. */
export const PRELUDE_FILE = '.boot0';
/** Named pipes (host side: se-bridge.ts) and the file naming the S0 edge port, in the board's folder. */
export const SE_REQUEST_PIPE = 'se.req';
export const SE_RESPONSE_PIPE = 'se.rsp';
/** JSON {"console": port, "s0": port}: where the host serves console input and S0 edges. */
export const PORTS_FILE = 'host-ports.json';

export const HARDWARE_PRELUDE = `// veilgrid espruino-linux board hardware (boards/espruino-linux/hardware-prelude.ts), not firmware
(function(){
var fs=require("fs");
function se(op,a,d){fs.writeFileSync("${SE_REQUEST_PIPE}",op+String.fromCharCode(a&127,d.length&255,d.length>>8)+d);return fs.readFileSync("${SE_RESPONSE_PIPE}");}
var setup=I2C1.setup;
I2C1.setup=function(o){setup.call(I2C1,o);se("S",0,""+((o&&o.bitrate)||100000));};
I2C1.writeTo=function(a){var d="";for(var i=1;i<arguments.length;i++)d+=E.toString(arguments[i]);if(se("W",a,d)!="\\x01")throw new Error("jshI2CWrite: slave doesn't ACK the transfer");};
I2C1.readFrom=function(a,n){var r=se("R",a,String.fromCharCode(n&255,n>>8));if(r[0]!="\\x01")throw new Error("jshI2CRead: slave doesn't ACK the transfer");return E.toUint8Array(r.substr(1));};
var SI=I2C.prototype;
SI.setup=function(o){this.br=o&&o.scl!==undefined&&o.sda!==undefined?((o.bitrate||100000)/100)|0:0;};
SI.writeTo=function(a){if(!this.br)return;var d=String.fromCharCode(this.br&255,this.br>>8);for(var i=1;i<arguments.length;i++)d+=E.toString(arguments[i]);se("w",a,d);};
SI.readFrom=function(a,n){if(!this.br)return new Uint8Array(n);return E.toUint8Array(se("r",a,String.fromCharCode(this.br&255,this.br>>8,n&255,n>>8)));};
Modules.addCached("Wifi","var up=0;exports.connect=function(s,o,cb){up=1;setTimeout(function(){if(cb)cb(null);exports.emit('connected',{ssid:s});},0);};exports.disconnect=function(cb){up=0;exports.emit('disconnected',{reason:'disconnect'});if(cb)setTimeout(cb,0);};exports.getStatus=function(){return {station:up?'connected':'off'};};exports.getIP=function(){return {ip:'127.0.0.1',mac:'24:0a:c4:00:00:01'};};exports.setSNTP=function(){};");
var W={},L={},sw=setWatch,cw=clearWatch;
global.setWatch=function(cb,pin,o){var id=sw(cb,pin,o);o=o||{};W[id]={cb:cb,pin:pin,e:o.edge=="rising"?1:o.edge=="falling"?-1:0,d:o.debounce||0,r:o.repeat,s:L[pin]!==0};return id;};
global.clearWatch=function(id){if(id===undefined){cw();W={};}else{cw(id);delete W[id];}};
function run(w,id,st,t){if(w.e&&(st?w.e<0:w.e>0)){w.lt=t;return;}if(!w.r){delete W[id];cw(id);}var l=w.lt;w.lt=t;w.cb({state:st,time:t,lastTime:l,pin:w.pin});}
function due(w,id){var o=w.to;w.to=0;if(o.st===w.s)return;w.s=o.st;run(w,id,o.st,o.at-w.d/1000);}
function arm(w,id,st,t){w.to={st:st,at:t+w.d/1000,id:setTimeout(function(){due(w,id);},Math.max(0,(t+w.d/1000-getTime())*1000))};}
function edge(pin,st,t){L[pin]=st?1:0;for(var id in W){var w=W[id];if(w.pin!=pin)continue;if(!w.d){w.s=st;run(w,id,st,t);}else if(w.to){var at=w.to.at;clearTimeout(w.to.id);if(t>at&&st!==w.s){w.to=0;w.s=st;run(w,id,st,at-w.d/1000);}else arm(w,id,st,t);}else if(st!==w.s)arm(w,id,st,t);}}
var P={};try{P=JSON.parse(fs.readFileSync("${PORTS_FILE}"));}catch(e){}
if(P.s0){var b="";require("net").connect({host:"127.0.0.1",port:P.s0},function(){}).on("data",function(d){b+=d;var i;while((i=b.indexOf("\\n"))>=0){var f=b.substr(0,i).split(" ");b=b.substr(i+1);edge(+f[0],f[1]=="1",+f[2]);}});}
if(P.console){var inq="",c=require("net").connect({host:"127.0.0.1",port:P.console},function(){});
var feed=function(){var n=Math.min(128,inq.length);USB.inject(inq.substr(0,n));inq=inq.substr(n);c.write(String.fromCharCode(n));if(inq)setTimeout(feed,0);};
c.on("data",function(d){if(!inq)setTimeout(feed,0);inq+=d;});}
})();
`;
