export * from './baked-image';
export * from './baked-image-props';
export * from './builder-after-bake';
// By name: the module's defaultRootVolumeInitialization() is for BakedImage, not a public function.
export { type BakedImageLaunchTemplateProps, VolumeInitialization } from './launch-template-props';
export * from './provider-settings';
export * from './rebake-schedule';
export * from './sanitize';
export * from './validation';
