/**
 * Image references as users write them (`ubuntu`, `quay.io/openstack.kolla/nova-api:2025.1-rocky-9`,
 * `localhost:4000/x:y`, `name@sha256:...`), normalised as Docker does (distribution/reference
 * ParseNormalizedNamed): no host means docker.io, index.docker.io is docker.io, and a
 * one-component Docker Hub name is an official image under library/.
 */
import { parseDigest } from '../oci/digest.ts';
import { RegistryError } from '../oci/errors.ts';
import { isValidName, isValidTag, MAX_NAME_LENGTH } from '../oci/names.ts';
import { looksLikeHost } from './hosts.ts';

export const DOCKER_HUB_HOST = 'docker.io';

export interface ImageRef {
  /** Registry host, with port if any; docker.io when the reference names none. */
  host: string;
  /** Repository on that host, e.g. library/ubuntu. */
  repository: string;
  tag?: string;
  digest?: string;
}

// distribution/reference: a domain component, dotted, optional port; or a bracketed IPv6 address.
const DOMAIN = /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;
const IMAGE_ID = /^[a-f0-9]{64}$/;

const invalid = (ref: string, why: string): RegistryError =>
  new RegistryError('NAME_INVALID', `invalid image reference ${JSON.stringify(ref)}: ${why}`, { reference: ref });

/** Parses and normalises a reference; throws NAME_INVALID, TAG_INVALID or DIGEST_INVALID. */
export function parseImageRef(input: string): ImageRef {
  if (IMAGE_ID.test(input)) throw invalid(input, 'a 64-character hex string is an image ID, not a name');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!parseDigest(digest)) throw new RegistryError('DIGEST_INVALID', `invalid digest in ${JSON.stringify(input)}`, { reference: input });
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isValidTag(tag)) throw new RegistryError('TAG_INVALID', `invalid tag in ${JSON.stringify(input)}`, { reference: input });
  }
  if (rest === '') throw invalid(input, 'no repository name');
  if (rest.length > MAX_NAME_LENGTH) throw invalid(input, `name longer than ${MAX_NAME_LENGTH} characters`);

  let host = DOCKER_HUB_HOST;
  let repository = rest;
  const slash = rest.indexOf('/');
  const first = rest.slice(0, slash);
  // Docker also takes an upper-case first component for a host: names themselves are lower-case.
  if (slash > 0 && (looksLikeHost(first) || first !== first.toLowerCase())) {
    if (!DOMAIN.test(first)) throw invalid(input, `invalid registry host ${JSON.stringify(first)}`);
    host = first.toLowerCase();
    repository = rest.slice(slash + 1);
  }
  if (host === 'index.docker.io') host = DOCKER_HUB_HOST;
  if (repository !== repository.toLowerCase()) throw invalid(input, 'repository name must be lowercase');
  if (!isValidName(repository)) throw invalid(input, 'invalid repository name');
  if (host === DOCKER_HUB_HOST && !repository.includes('/')) repository = `library/${repository}`;

  const out: ImageRef = { host, repository };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** Docker's default: a reference with neither tag nor digest means `:latest`. */
export function withDefaultTag(ref: ImageRef): ImageRef {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: 'latest' } : ref;
}

/** The full canonical form, e.g. docker.io/library/ubuntu:latest. */
export function formatImageRef(ref: ImageRef): string {
  return `${ref.host}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The short form Docker prints: ubuntu, kolla/centos-binary-nova-api:2.0.2, quay.io/x:y. */
export function familiarImageRef(ref: ImageRef): string {
  let name = `${ref.host}/${ref.repository}`;
  if (ref.host === DOCKER_HUB_HOST) name = ref.repository.startsWith('library/') && ref.repository.split('/').length === 2 ? ref.repository.slice(8) : ref.repository;
  return `${name}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/**
 * The repository to ask a ferry mirror for, as Docker would with the mirror as its registry:
 * Docker Hub images by their Hub name (so rewrite rules and registry-mirrors clients share
 * the cache), others host-prefixed. A host with a port cannot be part of a repository name.
 */
export function mirrorRepository(ref: ImageRef): string {
  if (ref.host === DOCKER_HUB_HOST) return ref.repository;
  const name = `${ref.host}/${ref.repository}`;
  if (!isValidName(name)) throw invalid(formatImageRef(ref), `host ${ref.host} cannot be named through a mirror`);
  return name;
}
