/** Media types ferry understands as manifests. */
export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

export const MANIFEST_MEDIA_TYPES: readonly string[] = [MEDIA.dockerManifest, MEDIA.dockerManifestList, MEDIA.ociManifest, MEDIA.ociIndex];
export const INDEX_MEDIA_TYPES: readonly string[] = [MEDIA.dockerManifestList, MEDIA.ociIndex];

export function isManifestMediaType(mt: string): boolean {
  return MANIFEST_MEDIA_TYPES.includes(mt);
}

export function isIndexMediaType(mt: string): boolean {
  return INDEX_MEDIA_TYPES.includes(mt);
}

/** The Accept header ferry sends upstream: every manifest type it can store and serve. */
export const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
