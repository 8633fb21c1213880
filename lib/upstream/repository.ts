/** The name a repository has on an upstream. Pure; lib/rewrite does the same, this is the client's own guard. */
import type { UpstreamConfig } from '../config/schema.ts';

/** Docker Hub keeps official images under library/: `ubuntu` there is `library/ubuntu`. */
export function upstreamRepository(kind: UpstreamConfig['kind'], name: string): string {
  return kind === 'dockerhub' && !name.includes('/') ? `library/${name}` : name;
}
