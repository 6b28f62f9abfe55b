export * from './baked-image';
export * from './builder-after-bake';
export * from './provider-settings';
export * from './sanitize';
export * from './validation';
