/** Writes registry.schema.json from the zod schema, so editors can check registry.config.json. */
import { writeFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configJsonSchema } from '../lib/config/json-schema.ts';

const out = resolve(dirname(fileURLToPath(import.meta.url)), '../registry.schema.json');
writeFileSync(out, JSON.stringify(configJsonSchema(), null, 2) + '\n');
console.log(`wrote ${out}`);
