export * from './baked-image';
export * from './sanitize';
export * from './validation';
