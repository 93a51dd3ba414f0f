-- CreateEnum
CREATE TYPE "file_state" AS ENUM ('pending', 'ready', 'deleting');

-- CreateTable
CREATE TABLE "files" (
    "id" UUID NOT NULL,
    "owner_id" TEXT NOT NULL,
    "state" "file_state" NOT NULL DEFAULT 'pending',
    "purpose" TEXT,
    "filename" TEXT NOT NULL,
    "bytes" BIGINT NOT NULL DEFAULT 0,
    "sha256" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "expires_at" TIMESTAMPTZ(3),
    "heartbeat_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "files_pkey" PRIMARY KEY ("id"),
    -- Not expressible in schema.prisma (Prisma does not model CHECK constraints); invariants the
    -- application relies on.
    CONSTRAINT "files_bytes_check" CHECK ("bytes" >= 0),
    CONSTRAINT "files_ready_complete_check" CHECK ("state" = 'pending' OR ("purpose" IS NOT NULL AND "expires_at" IS NOT NULL))
);

-- CreateTable
CREATE TABLE "owner_usage" (
    "owner_id" TEXT NOT NULL,
    "used_bytes" BIGINT NOT NULL DEFAULT 0,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "owner_usage_pkey" PRIMARY KEY ("owner_id"),
    CONSTRAINT "owner_usage_used_bytes_check" CHECK ("used_bytes" >= 0)
);

-- CreateIndex
CREATE INDEX "files_owner_id_id_idx" ON "files"("owner_id", "id");

-- CreateIndex
CREATE INDEX "files_state_expires_at_idx" ON "files"("state", "expires_at");

-- CreateIndex
CREATE INDEX "files_state_heartbeat_at_idx" ON "files"("state", "heartbeat_at");
