export * from './baked-image';
export * from './baked-image-props';
export * from './builder-after-bake';
export * from './provider-settings';
export * from './sanitize';
export * from './validation';
