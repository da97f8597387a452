#!/usr/bin/env node
// The `veilgrid` command: host tools are TypeScript, run through tsx's loader so no separate compile step is needed.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../host-tools/veilgrid.ts');
process.exitCode = await main(process.argv.slice(2));
