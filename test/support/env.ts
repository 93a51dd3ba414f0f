/** Names the global setup uses to hand resolved backends to test files (via process.env). */
export const ENV = {
  template: 'FILES_TEST_TEMPLATE_DATABASE',
  containers: '__filesTestContainers',
} as const;

/** The same server URL pointing at another database. */
export function databaseUrl(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}
