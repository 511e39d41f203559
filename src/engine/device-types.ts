/**
 * The devices graphs run on, and the error for one that cannot be used. Kept apart from the
 * device probe (device.ts, Node only) so that the browser build of the runtime shares them.
 */

/** An execution provider our graphs run on. */
export type Device = 'cpu' | 'webgpu' | 'cuda';
/** What a user may ask for: a device, or 'auto' (the first usable of cuda, webgpu, cpu). */
export type DeviceRequest = Device | 'auto';
export const DEVICE_REQUESTS = ['cpu', 'webgpu', 'cuda', 'auto'] as const satisfies readonly DeviceRequest[];

/** A device that was asked for and cannot be used here; the message says why and what to do. */
export class DeviceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeviceError';
  }
}
