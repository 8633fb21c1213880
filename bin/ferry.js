#!/usr/bin/env node
// Runs the TypeScript CLI without a build step: tsx registers its loader, then the CLI starts.
import { register } from 'tsx/esm/api';
register();
await import('../scripts/ferry.ts');
