export * from './baked-image';
export * from './sanitize';
