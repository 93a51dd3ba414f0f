-- Managed API keys for the standalone service (`npm run cli -- keys create|list|revoke`).
-- Only the SHA-256 digest of a key is stored; the key itself is shown once, at creation.

-- CreateTable
CREATE TABLE "api_keys" (
    "id" UUID NOT NULL,
    "owner_id" TEXT NOT NULL,
    "name" TEXT NOT NULL DEFAULT '',
    "key_hash" BYTEA NOT NULL,
    "key_prefix" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "last_used_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),

    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id"),
    -- Not expressible in schema.prisma. The owner syntax API_KEYS accepts (src/config/app-config.ts):
    -- letters, digits, . _ @ -, not starting with a punctuation character, at most 128.
    CONSTRAINT "api_keys_owner_id_check" CHECK ("owner_id" ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$'),
    -- A SHA-256 digest, nothing else: a key itself can never land in this column.
    CONSTRAINT "api_keys_key_hash_check" CHECK (octet_length("key_hash") = 32),
    CONSTRAINT "api_keys_name_check" CHECK (char_length("name") <= 200),
    CONSTRAINT "api_keys_key_prefix_check" CHECK (char_length("key_prefix") BETWEEN 1 AND 32)
);

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_key_hash_key" ON "api_keys"("key_hash");

-- CreateIndex
CREATE INDEX "api_keys_owner_id_created_at_idx" ON "api_keys"("owner_id", "created_at");
