import { FilesDatabase } from '../database/files-database';

/**
 * The API keys' own small pool and Prisma client (the same class as FilesModule's, a separate
 * instance): key lookups never queue behind uploads for a connection, and FilesModule stays
 * unaware of how the standalone service authenticates. Also the DI token of that instance.
 */
export class ApiKeysDatabase extends FilesDatabase {}
