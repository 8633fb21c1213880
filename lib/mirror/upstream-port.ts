/** The UpstreamClient as the pull-through layer sees it. */
import { RegistryError } from '../oci/errors.ts';
import type { UpstreamClient } from '../upstream/client.ts';
import { upstreamRangeSource } from '../upstream/range-source.ts';
import type { UpstreamPort } from './ports.ts';

export function upstreamPort(client: UpstreamClient): UpstreamPort {
  return {
    getManifest: (repository, reference, signal) => client.getManifest(repository, reference, signal),
    headManifest: (repository, reference, signal) => client.headManifest(repository, reference, signal),
    async headBlob(repository, digest, signal) {
      const head = await client.headBlob(repository, digest, signal);
      if (!head) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${client.name}/${repository}`, { digest, upstream: client.name });
      return { size: head.size };
    },
    rangeSource: (repository, digest) => upstreamRangeSource(client, repository, digest),
    listTags: (repository, signal) => client.listTags(repository, signal),
  };
}
