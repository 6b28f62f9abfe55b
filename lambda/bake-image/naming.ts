export { imageName } from '../../src/private/contract';
