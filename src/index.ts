export * from './baked-image';
