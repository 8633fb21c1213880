/** An operator's Kolla input that names nothing Kolla has (release, profile, group, globals.yml): one line, no stack. */
export class KollaError extends Error {
  override name = 'KollaError';
}
