import { agentResponse, type ConversationRecord, type ConversationState } from './conversation.ts';

/**
 * What the manager agent may answer (docs/contract.md, "The manager agent"). Step Functions carries the answer in
 * the workflow's state, capped at 256 KB, and a state over the cap fails the execution with
 * States.DataLimitExceeded, which no Catch handles. So the gateway refuses, with 502 AGENT_ERROR and the conversation
 * exported as failed, an answer that is empty, nested deeper than MAX_AGENT_ANSWER_DEPTH, over
 * MAX_AGENT_ANSWER_BYTES, or that would take the state over MAX_STATE_BYTES. The record holds the answer once (the
 * assistant turn's data; its text is not copied beside it) and the caller's response once more, beside the question
 * (up to 60 KB), its metadata (16 KB) and a thread's earlier turns (up to 32 KB): the state limit is checked on all
 * of that, and leaves 16 KB of the 256 for the delivery attempts and errors the later states add. Within the 64 KB answer cap that sum stays under it today; the
 * check keeps a future field from turning into States.DataLimitExceeded.
 */
const MAX_AGENT_ANSWER_BYTES = 64 * 1024;
const MAX_STATE_BYTES = 240 * 1024;
/**
 * The deepest an answer may nest arrays and objects (docs/contract.md, "The manager agent"). Step Functions documents
 * no nesting limit, only its 256 KB, but the handlers read the answer with recursive code (JSON.stringify among it,
 * on Lambda's and the local engine's stack): within 256 KB an answer can nest 100,000 levels, far past where that
 * code overflows its stack (a RangeError, which no longer says what happened). So an answer deeper than this is
 * refused before anything recursive reads it; a real answer nests a handful of levels.
 */
export const MAX_AGENT_ANSWER_DEPTH = 64;

const bytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value) ?? '');

/**
 * An answer that says nothing: none, a string of white space only, or an object or array holding nothing but such
 * values (`{}`, `{"response": " "}`, `[null]`). Delivered, it would reach the receiver as an empty analysis; a number
 * or a boolean (0, false) is an answer.
 */
function isEmptyAnswer(answer: unknown, depth = 0): boolean {
  if (answer === null || answer === undefined) return true;
  if (typeof answer === 'string') return answer.trim() === '';
  if (typeof answer !== 'object' || depth > MAX_AGENT_ANSWER_DEPTH) return false;
  return Object.values(answer).every((value) => isEmptyAnswer(value, depth + 1));
}

/**
 * Whether `value` nests arrays and objects more than `limit` levels deep (`{}` and `[1]` are one level, `[[1]]` two),
 * found without recursion, so that no depth overflows the stack, and without reading further than needed.
 */
export function nestedDeeperThan(value: unknown, limit: number): boolean {
  const pending: [unknown, number][] = [[value, 0]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [item, depth] = next;
    if (item === null || typeof item !== 'object') continue;
    if (depth + 1 > limit) return true;
    for (const child of Object.values(item))
      if (child !== null && typeof child === 'object') pending.push([child, depth + 1]);
  }
  return false;
}

/** Why an answer nested past MAX_AGENT_ANSWER_DEPTH is refused (the local engine says it too: lambda-invoke.ts). */
export const TOO_DEEP_ANSWER = `the manager agent answered JSON nested more than ${MAX_AGENT_ANSWER_DEPTH} levels deep, more than a conversation can carry`;

/**
 * Why the conversation cannot carry `answer` (null when it can). `settled` is the record with the answer recorded
 * as its assistant turn, `state` the workflow state that will carry it.
 */
export function answerProblem(answer: unknown, settled: ConversationRecord, state: ConversationState): string | null {
  // First: the checks below read the answer recursively.
  if (nestedDeeperThan(answer, MAX_AGENT_ANSWER_DEPTH)) return TOO_DEEP_ANSWER;
  if (isEmptyAnswer(answer)) return 'the manager agent returned an empty answer';
  const answerBytes = bytes(answer);
  if (answerBytes > MAX_AGENT_ANSWER_BYTES) {
    return `the manager agent answered ${answerBytes} bytes, more than the ${MAX_AGENT_ANSWER_BYTES} a conversation can carry`;
  }
  const { pending_answer: _, ...record } = settled;
  const stateBytes = bytes({ ...state, conversation: record }) + bytes(agentResponse(record));
  if (stateBytes > MAX_STATE_BYTES) {
    return `the manager agent answered ${answerBytes} bytes, which makes this conversation ${stateBytes} bytes, more than the ${MAX_STATE_BYTES} a workflow state can carry`;
  }
  return null;
}
