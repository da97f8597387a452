// Which firmware this is: the release version, and the build id of the exact bundle running.
// `veilgrid build` replaces __VEILGRID_BUILD_ID__ with the first 16 hex digits of the SHA-256 of the
// bundle it produced (host-tools/build/build-firmware.ts `buildIdOf` gives the exact definition), so
// `veilgrid flash` can ask a running meter which bundle it booted. Code run without that build (host
// tests importing firmware modules directly) reports "dev".

declare const __VEILGRID_BUILD_ID__: string | undefined;

export const FIRMWARE_VERSION = '0.1.0';

export const BUILD_ID: string = typeof __VEILGRID_BUILD_ID__ === 'string' ? __VEILGRID_BUILD_ID__ : 'dev';
