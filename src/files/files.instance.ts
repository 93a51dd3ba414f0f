/**
 * Identifies one FilesModule instance inside an application, so its background jobs register
 * under names of their own (two instances never share a schedule).
 */
export class FilesInstance {
  constructor(readonly name: string) {}

  /** A name for something this instance registers application-wide, such as an interval. */
  scoped(what: string): string {
    return this.name === 'files' ? `files-${what}` : `${this.name}:${what}`;
  }
}
