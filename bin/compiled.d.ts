export function compiledEntry(root: string): string;
export function compiledIsCurrent(root: string): boolean;
