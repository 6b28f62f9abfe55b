/** The builder instance once its image is available: stopped, terminated or left running (builderAfterBake). */
import { StopInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { ec2 } from './clients';
import { describeError, errorCode } from './errors';
import { log } from './log';
import { BuilderAfterBake } from '../../src/builder-after-bake';
import type { BakeProperties } from '../../src/private/contract';

/** Stops, terminates or leaves the builder once the image is available. Repeatable. */
export async function settleBuilder(props: BakeProperties): Promise<void> {
  const instanceId = props.instanceId;
  try {
    switch (props.builderAfterBake) {
      case BuilderAfterBake.STOP:
        await ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
        log('builder stopping', { instanceId });
        return;
      case BuilderAfterBake.TERMINATE:
        await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
        log('builder terminating', { instanceId });
        return;
      case BuilderAfterBake.KEEP_RUNNING:
        log('builder left running', { instanceId });
        return;
    }
  } catch (error) {
    const code = errorCode(error);
    if (code === 'InvalidInstanceID.NotFound' || code === 'IncorrectInstanceState') {
      // Already terminated (or terminating): nothing left to stop.
      log('builder already gone', { instanceId, code });
      return;
    }
    throw new Error(`Could not ${props.builderAfterBake} builder ${instanceId}: ${describeError(error)}`);
  }
}
