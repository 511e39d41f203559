/** The --device flag of the commands whose options are not read from a config schema. */
import { DEVICE_REQUESTS, type DeviceRequest } from '../engine/device.js';
import { DpoError } from '../errors.js';

export const DEVICE_FLAG = '--device <name>';
export const DEVICE_HELP = 'where graphs run: cpu, webgpu, cuda, or auto (a usable GPU, else cpu)';

/** The --device value, checked (undefined: cpu). */
export function parseDevice(value: string | undefined): DeviceRequest {
  const v = value ?? 'cpu';
  if (!(DEVICE_REQUESTS as readonly string[]).includes(v)) throw new DpoError(`--device must be one of ${DEVICE_REQUESTS.join(', ')}, got '${v}'`);
  return v as DeviceRequest;
}
