export * from './baked-image';
export * from './builder-after-bake';
export * from './sanitize';
export * from './validation';
