export * from './baked-image';
export * from './baked-image-props';
export * from './builder-after-bake';
export * from './launch-template-props';
export * from './provider-settings';
export * from './rebake-schedule';
export * from './sanitize';
export * from './validation';
