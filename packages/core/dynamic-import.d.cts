/** import(specifier), resolved from @ssh-r-sync/core; see dynamic-import.cjs. */
export declare function importModule<T = unknown>(specifier: string): Promise<T>;
