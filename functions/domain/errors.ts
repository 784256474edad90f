/**
 * Errors whose `name` the state machine matches in Retry/Catch (`ErrorEquals`), in both engines:
 * AWS reports a Node Lambda's `errorType` (the error's name); the local engine matches `error.name`.
 */
export class NamedError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** A delivery attempt that may succeed later (408, 429, 5xx, network error, timeout). */
export class DeliveryRetryableError extends NamedError {
  constructor(message: string) {
    super('DeliveryRetryableError', message);
  }
}

/**
 * No delivery attempt was made: too little of the caller's response deadline is left (a slow agent). The workflow
 * queues the delivery for the redelivery schedule instead, so the caller gets its answer in time.
 */
export class DeliveryDeferredError extends NamedError {
  constructor(message: string) {
    super('DeliveryDeferredError', message);
  }
}

/** A delivery the receiver refused for good (other 4xx, redirects, no URL configured). */
export class DeliveryPermanentError extends NamedError {
  constructor(message: string) {
    super('DeliveryPermanentError', message);
  }
}

/** The manager agent answered with a FunctionError or an unusable payload. */
export class AgentInvocationError extends NamedError {
  constructor(message: string) {
    super('AgentInvocationError', message);
  }
}

/** The manager agent did not answer within MANAGER_AGENT_TIMEOUT_MS. */
export class AgentTimeoutError extends NamedError {
  constructor(message: string) {
    super('AgentTimeoutError', message);
  }
}

/** Writing the export failed (S3 unreachable or refused); the state retries it. */
export class ExportError extends NamedError {
  constructor(message: string) {
    super('ExportError', message);
  }
}
