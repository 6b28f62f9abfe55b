/**
 * What happens to the builder instance once its image is available.
 *
 * The values are what the construct hands its handlers: this enum is the one list of choices on both sides.
 */
export enum BuilderAfterBake {
  /**
   * Stop the builder. It costs only its EBS volumes, can be started again to debug the bake, and stays
   * a normal CloudFormation resource: in-place updates and stack deletion work as usual.
   */
  STOP = 'stop',

  /**
   * Terminate the builder. Nothing is left running or stored, but CloudFormation still records the
   * instance: an in-place update of it (for example a tag added to the whole stack) fails once EC2 has
   * forgotten the instance. Changes of the image inputs replace the builder and are safe.
   */
  TERMINATE = 'terminate',

  /**
   * Leave the builder running, for example to inspect it. It is billed until the stack is deleted.
   */
  KEEP_RUNNING = 'keep-running',
}
