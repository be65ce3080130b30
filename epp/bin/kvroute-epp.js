#!/usr/bin/env node
// Entry point of the kvroute-epp command: runs the compiled CLI (npm run build -w epp).
import '../dist/cli/run.js';
