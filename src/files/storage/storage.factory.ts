import type { StorageConfig } from '../../config/app-config';
import type { FileStorage } from './file-storage';
import { FsFileStorage } from './fs-file-storage';
import { S3FileStorage } from './s3-file-storage';

/** Builds the adapter that validated config asks for. */
export async function createFileStorage(config: StorageConfig): Promise<FileStorage> {
  switch (config.driver) {
    case 'fs': {
      const storage = new FsFileStorage(config.dir);
      await storage.init();
      return storage;
    }
    case 's3':
      return new S3FileStorage(config);
  }
}
