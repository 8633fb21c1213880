/** Assembles and starts the mirror role from a loaded config. */
import type { Server } from 'node:http';
import type { LoadedConfig } from '../lib/config/load.ts';
import { createLogger, type Logger } from '../lib/log/logger.ts';
import { openStore, type Store } from '../lib/storage/store.ts';
import { LocalRegistry } from '../lib/registry/local.ts';
import type { RegistryBackend } from '../lib/registry/types.ts';
import { createMirrorApp } from './mirror-app.ts';
import { boundAddress, listen } from './listen.ts';

export interface RunningMirror {
  server: Server;
  address: string;
  store: Store;
  backend: RegistryBackend;
  logger: Logger;
  close(): Promise<void>;
}

export async function startMirror(config: LoadedConfig, logger: Logger = createLogger(config.log)): Promise<RunningMirror> {
  const store = await openStore(config.dataDir);
  const backend = new LocalRegistry(store);
  const app = createMirrorApp({ backend, logger });
  const server = await listen(app, { listen: config.listen, tls: config.tls });
  const address = boundAddress(server);
  logger.info({ address, dataDir: config.dataDir, config: config.file, tls: Boolean(config.tls) }, 'mirror listening');
  return {
    server,
    address,
    store,
    backend,
    logger,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
