/** Set when the process starts draining, so /readyz turns red before the listener closes. */
export class ShutdownState {
  draining = false;
}
