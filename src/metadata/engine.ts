/** The database engines the metadata lives in: the embedded default, and the one for several replicas. */
export type MetadataEngine = 'sqlite' | 'postgres';
