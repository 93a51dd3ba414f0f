import { defineConfig } from 'prisma/config';

// DATABASE_URL is read directly (not with `env()`), because `env()` throws when the variable is
// unset, and `prisma generate` must work without a database.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? '' },
});
