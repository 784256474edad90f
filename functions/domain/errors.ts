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

/**
 * The manager agent answered what the conversation cannot carry (empty, over the contract's cap, nested too deep,
 * or too large for the workflow state): Classify refuses it and the conversation is exported as failed (docs/contract.md).
 */
export class AgentAnswerRejected extends NamedError {
  constructor(message: string) {
    super('AgentAnswerRejected', message);
  }
}

/** Writing the export failed (S3 unreachable or refused); the state retries it. */
export class ExportError extends NamedError {
  constructor(message: string) {
    super('ExportError', message);
  }
}

/**
 * The export cannot be written before the caller's answer is due ($.budget.answer_by): not retried, the workflow
 * closes the conversation without S3 and queues the record instead.
 */
export class ExportDeadlineError extends NamedError {
  constructor(message: string) {
    super('ExportDeadlineError', message);
  }
}

/**
 * Deliver's error when the local gateway's delivery secrets file cannot be used while it runs (functions/shared/
 * secrets.ts): the local operator's line shows its message, which names the file (docs/operations.md).
 */
export const DELIVERY_SECRETS_FILE_ERROR = 'DeliverySecretsFileError';
