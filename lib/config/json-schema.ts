/** The JSON Schema of the config file, derived from the zod schema (one source of truth). */
import { z } from 'zod';
import { configSchema } from './schema.ts';

export function configJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(configSchema, { io: 'input' }), title: 'ferry registry.config.json' };
}
