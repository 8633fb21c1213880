/**
 * The cluster tests' bucket on a real RGW (test/helpers/ceph.ts): ClusterObjects for a replica,
 * the access a worker thread needs to build its own, and ClusterObjects whose writes a test can
 * hold back (a partition, a paused process).
 */
import { S3Bucket } from '../../lib/storage/s3/bucket.ts';
import { createS3Client } from '../../lib/storage/s3/client.ts';
import { ClusterObjects, type PutCondition } from '../../lib/cluster/objects.ts';
import type { Rgw } from '../helpers/ceph.ts';

/** What a worker thread needs to reach the same bucket (plain data: it crosses postMessage). */
export interface S3Access {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
}

export const CLUSTER_PREFIX = 'cluster/';

export function accessOf(rgw: Rgw, bucket: string): S3Access {
  return { endpoint: rgw.endpoint, region: rgw.region, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey, bucket };
}

function s3Bucket(a: S3Access): S3Bucket {
  const client = createS3Client(
    { endpoint: a.endpoint, region: a.region, forcePathStyle: true, requestTimeoutSeconds: 10, maxSockets: 16 },
    { accessKeyId: a.accessKeyId, secretAccessKey: a.secretAccessKey },
  );
  return new S3Bucket(client, a.bucket, CLUSTER_PREFIX);
}

/** A replica's own client to the cluster's bucket. */
export function clusterObjects(a: S3Access): ClusterObjects {
  return new ClusterObjects(s3Bucket(a));
}

/** ClusterObjects whose writes can be held back, as a network partition or a paused process would hold them. */
export class GatedObjects extends ClusterObjects {
  gate: Promise<void> = Promise.resolve();
  /** Each write's outcome: the new etag, or undefined when its condition failed. */
  readonly results: Array<string | undefined> = [];

  constructor(access: S3Access) {
    super(s3Bucket(access));
  }

  /** Holds every write from now until the returned function is called. */
  close(): () => void {
    let open!: () => void;
    this.gate = new Promise((r) => (open = r));
    return open;
  }

  override async put(key: string, body: string | Buffer, condition?: PutCondition): Promise<string | undefined> {
    await this.gate;
    const etag = await super.put(key, body, condition);
    this.results.push(etag);
    return etag;
  }
}

/** Objects whose next write lands in the bucket but whose answer is lost (the client sees an error). */
export class AnswerLosingObjects extends ClusterObjects {
  loseNext = false;

  constructor(access: S3Access) {
    super(s3Bucket(access));
  }

  override async put(key: string, body: string | Buffer, condition?: PutCondition): Promise<string | undefined> {
    const etag = await super.put(key, body, condition);
    if (this.loseNext) {
      this.loseNext = false;
      throw new Error('socket hang up (the write landed, its answer was lost)');
    }
    return etag;
  }
}
