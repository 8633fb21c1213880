/**
 * The README's scale-out recipe ("Scale-out: several mirrors on one Ceph bucket") as the tests run
 * it: the replicas' storage section and the haproxy config, taken from README.md with only the
 * site's addresses, bucket and credentials file substituted.
 */
import { readmeBlock } from '../helpers/readme.ts';

export const RECIPE = 'Scale-out: several mirrors on one Ceph bucket';
/** The example site's addresses in the recipe. */
export const RECIPE_VIP = '192.0.2.100:4000';
export const RECIPE_ENDPOINT = 'http://rgw.example.lan:7480';
export const RECIPE_BUCKET = 'ferry-mirror';

/** The README's `storage` section for this endpoint, bucket and credentials file. */
export function recipeStorage(endpoint: string, bucket: string, credentialsFile: string): Record<string, unknown> {
  const block = JSON.parse(readmeBlock(RECIPE, 'json')) as { storage: Record<string, unknown> };
  if (block.storage.endpoint !== RECIPE_ENDPOINT || block.storage.bucket !== RECIPE_BUCKET) {
    throw new Error(`the README's storage block no longer names ${RECIPE_ENDPOINT} / ${RECIPE_BUCKET}: update test/cluster/scale-out-recipe.ts`);
  }
  return { ...block.storage, endpoint, bucket, credentialsFile };
}

/** The README's haproxy.cfg, bound to `bind` and balancing over `servers` (host:port each, in order). */
export function recipeHaproxy(bind: string, servers: string[]): string {
  let n = 0;
  const text = readmeBlock(RECIPE, 'haproxy')
    .replace(`bind ${RECIPE_VIP}`, `bind ${bind}`)
    .replace(/^(\s*server r\d+ )\S+( .*)$/gm, (_, head: string, tail: string) => `${head}${servers[n++] ?? 'unused:1'}${tail}`);
  if (n !== servers.length) throw new Error(`the README's haproxy block has ${n} servers, the test ${servers.length}`);
  return text;
}

/** The AWS shared credentials file the recipe's credentialsFile names. */
export function credentialsFileText(accessKeyId: string, secretAccessKey: string): string {
  return `[default]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secretAccessKey}\n`;
}

/** The README's `radosgw-admin user create ...` as arguments (after the program name; quotes removed). */
export function recipeUserCreateArgs(): string[] {
  const line = readmeBlock(RECIPE, 'sh').split('\n').find((l) => l.startsWith('radosgw-admin '));
  if (!line) throw new Error("the README's scale-out recipe has no radosgw-admin line");
  const words = (line.replace(/\s+#.*$/, '').match(/(?:[^\s"]+|"[^"]*")+/g) ?? []).map((w) => w.replace(/"/g, ''));
  return words.slice(1);
}
