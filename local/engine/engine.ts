import './polyfill.ts';
import './jsonpath-answers.ts';
import { readFileSync } from 'node:fs';
import { StateMachine } from 'aws-local-stepfunctions';
import { PAYLOAD_LIMIT_BYTES, TaskFailure } from './lambda-invoke.ts';

type RunResult = ReturnType<StateMachine['run']>;
type EventLog = RunResult['eventLogs'] extends AsyncGenerator<infer E> ? E : never;
type LocalHandler = NonNullable<
  NonNullable<NonNullable<Parameters<StateMachine['run']>[1]>['overrides']>['taskResourceLocalHandlers']
>[string];

/**
 * Runs an ASL file with aws-local-stepfunctions: the same file CDK deploys, with local ARNs substituted and every
 * Task state routed to the in-process handler registered for its Resource (a Lambda ARN or an SDK integration).
 * The handler gets the state's effective input and the state's timeout, if it has one.
 */
export type TaskHandler = (input: unknown, task?: { timeoutMs?: number }) => Promise<unknown>;

export type ExecutionStatus = 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

export interface HistoryEvent {
  type: string;
  timestamp: number;
  state?: string;
  state_type?: string;
  input?: unknown;
  output?: unknown;
  error?: string;
  cause?: unknown;
  retry_attempt?: number;
  /**
   * On a Task state's StateExited: what its task returned, when the state's ResultSelector / ResultPath /
   * OutputPath make its output something else (Express logs it as the LambdaFunctionSucceeded / TaskSucceeded
   * event's output). Export ends the workflow with only the caller's response as output: its result keeps the
   * closed record.
   */
  result?: unknown;
}

export interface ExecutionRecord {
  execution_name: string;
  state_machine: string;
  /** RUNNING: only in the running gateway's view of an execution not ended yet (running.ts), never saved. */
  status: ExecutionStatus | 'RUNNING';
  started_at: string;
  stopped_at: string;
  input: unknown;
  output?: unknown;
  error?: string;
  cause?: string;
  events: HistoryEvent[];
  /** On AWS (read back from the Express log group): the execution's ARN and its page in the Step Functions console. */
  execution_arn?: string;
  console_url?: string;
  /** Locally, a run that crash recovery started again (local/engine/recovery.ts): which restart, what cut the last. */
  restart?: RunRestart;
}

/** A run started again: the run before it left no history of its own (its run and this one share a name). */
export interface RunRestart {
  /** This restart's number, from 1, and how many there may be. */
  restart: number;
  of: number;
  /** When the run before it began, when its last step was journaled, and what cut it. */
  earlier_started_at: string;
  earlier_cut_at: string;
  earlier_cut_by: string;
}

/** An execution that ended: what a run gives, and what every saved history holds. */
export interface EndedExecution extends ExecutionRecord {
  status: ExecutionStatus;
}

interface AslState {
  Type: string;
  Resource?: string;
  Parameters?: Record<string, unknown>;
  TimeoutSeconds?: number;
  TimeoutSecondsPath?: string;
  ResultSelector?: Record<string, unknown>;
  ResultPath?: string | null;
  OutputPath?: string | null;
  Next?: string;
  Default?: string;
  Choices?: { Next?: string }[];
  Catch?: { Next?: string }[];
}

type Definition = { StartAt: string; States: Record<string, AslState> } & Record<string, unknown>;

/**
 * Sees every Task state of one execution as it runs: `enter` before the handler is called (with the task's input
 * when it is not simply the state's input, i.e. the state has Parameters), then `exit` with its result or `fail`
 * with its error. The execution journal (journal.ts) writes these down before each side effect happens.
 */
export interface TaskObserver {
  enter(state: string, parameters: unknown): void | Promise<void>;
  exit(state: string, output: unknown): void | Promise<void>;
  fail(state: string, error: unknown): void;
}

export interface RunOptions {
  observer?: TaskObserver;
  /** Start at this state instead of StartAt (recovery resumes an interrupted execution there). */
  startAt?: string;
  /** Each history event as the execution goes (the console shows an execution still running: running.ts). */
  onEvent?: (event: HistoryEvent) => void;
}

/** The states reachable from `start` (through Next, Default, Choices and Catch): the definition as run from there. */
function definitionFrom(definition: Definition, start: string): Definition {
  const reachable = new Set<string>();
  const visit = (name: string | undefined) => {
    if (!name || reachable.has(name) || !definition.States[name]) return;
    reachable.add(name);
    const state = definition.States[name]!;
    for (const next of [state.Next, state.Default, ...(state.Choices ?? []).map((c) => c.Next)]) visit(next);
    for (const c of state.Catch ?? []) visit(c.Next);
  };
  visit(start);
  if (!reachable.has(start)) throw new Error(`no state ${start}`);
  return {
    ...definition,
    StartAt: start,
    States: Object.fromEntries(Object.entries(definition.States).filter(([name]) => reachable.has(name))),
  };
}

/** `$$.State` of the context object, kept up to date by the engine shim below. */
interface StateContext {
  Name?: string;
  EnteredTime?: string;
  RetryCount?: number;
}

/**
 * Where the engine shim carries a Task's TimeoutSecondsPath value into its effective input (and out again before
 * the handler sees it). See `resolveTimeoutsLikeAws`.
 */
const TIMEOUT_PARAMETER = 'local_engine_timeout_seconds';

/**
 * aws-local-stepfunctions 3.0.0 resolves a Task's TimeoutSecondsPath against the state's effective input (after
 * Parameters), Step Functions against the state's input (the Parameters of `arn:aws:states:::lambda:invoke` hold
 * only FunctionName and Payload, so the budget is not there). The shim copies the path's value into Parameters
 * under TIMEOUT_PARAMETER and points TimeoutSecondsPath at it: the value is taken from the state's input, as on
 * AWS, and the handler wrapper removes the copy again.
 */
function resolveTimeoutsLikeAws(states: Record<string, AslState>): void {
  for (const state of Object.values(states)) {
    if (state.Type !== 'Task' || !state.TimeoutSecondsPath || !state.Parameters) continue;
    state.Parameters = { ...state.Parameters, [`${TIMEOUT_PARAMETER}.$`]: state.TimeoutSecondsPath };
    state.TimeoutSecondsPath = `$.${TIMEOUT_PARAMETER}`;
  }
}

/**
 * aws-local-stepfunctions 3.0.0 leaves `$$.State` (Name, EnteredTime, RetryCount) out of the context object. The
 * shim fills it in as the engine enters and retries each state, through the execution's event logger (the one
 * place the engine announces a state synchronously, before its Parameters are evaluated). On AWS EnteredTime is
 * the first entry, kept across retries: so here.
 */
function trackStateContext(machine: StateMachine): void {
  type Logger = {
    dispatchStateEnteredEvent: (name: string, ...rest: unknown[]) => void;
    dispatchStateRetriedEvent: (...args: unknown[]) => void;
  };
  type Execute = (
    input: unknown,
    options: { eventLogger: Logger; runOptions?: { context?: { State?: StateContext } } },
    cleanup: unknown,
  ) => unknown;
  const target = machine as unknown as { execute: Execute };
  const execute = target.execute.bind(machine);
  if (typeof execute !== 'function') throw new Error('aws-local-stepfunctions changed: StateMachine.execute is gone');
  target.execute = (input, options, cleanup) => {
    const logger = options.eventLogger;
    const state = options.runOptions?.context?.State;
    if (!state || typeof logger?.dispatchStateEnteredEvent !== 'function') {
      throw new Error('aws-local-stepfunctions changed: cannot track $$.State');
    }
    const entered = logger.dispatchStateEnteredEvent.bind(logger);
    logger.dispatchStateEnteredEvent = (name, ...rest) => {
      Object.assign(state, { Name: name, EnteredTime: new Date().toISOString(), RetryCount: 0 });
      entered(name, ...rest);
    };
    const retried = logger.dispatchStateRetriedEvent.bind(logger);
    logger.dispatchStateRetriedEvent = (...args) => {
      state.RetryCount = (state.RetryCount ?? 0) + 1;
      retried(...args);
    };
    return execute(input, options, cleanup);
  };
}

/**
 * aws-local-stepfunctions 3.0.0 puts no limit on a state's output; Step Functions fails the execution with
 * States.DataLimitExceeded, which no Catch handles, when one passes 256 KB (docs/contract.md, "The manager agent":
 * an answer that takes InvokeManagerAgent's state past it, with the question and metadata beside it). The shim
 * measures each state's output as the engine announces it, and fails the execution there, as Step Functions does.
 */
function limitStateOutputs(machine: StateMachine): void {
  type Logger = { dispatchStateExitedEvent: (name: string, type: string, input: unknown, output: unknown) => void };
  type Execute = (input: unknown, options: { eventLogger: Logger }, cleanup: unknown) => unknown;
  const target = machine as unknown as { execute: Execute };
  const execute = target.execute.bind(machine);
  target.execute = (input, options, cleanup) => {
    const logger = options.eventLogger;
    if (typeof logger?.dispatchStateExitedEvent !== 'function')
      throw new Error('aws-local-stepfunctions changed: cannot measure state outputs');
    const exited = logger.dispatchStateExitedEvent.bind(logger);
    logger.dispatchStateExitedEvent = (name, type, stateInput, output) => {
      const bytes = Buffer.byteLength(JSON.stringify(output) ?? '');
      if (bytes > PAYLOAD_LIMIT_BYTES) {
        throw new TaskFailure(
          'States.DataLimitExceeded',
          `The state/task '${name}' returned a result with a size exceeding the maximum number of bytes service limit (${bytes} > ${PAYLOAD_LIMIT_BYTES}).`,
          true,
        );
      }
      exited(name, type, stateInput, output);
    };
    return execute(input, options, cleanup);
  };
}

/**
 * The most of a task failure's Error and Cause Step Functions keeps (docs/contract.md, "The manager agent":
 * Failures): the rest is cut, and a Catch gets what is left. aws-local-stepfunctions 3.0.0 keeps them whole.
 */
const MAX_ERROR_CHARS = 256;
const MAX_CAUSE_CHARS = 32_768;

/** A task's failure as Step Functions records it: its Error and Cause cut to their limits (the error is kept). */
function cutLikeAws(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  if (error.name.length > MAX_ERROR_CHARS) error.name = error.name.slice(0, MAX_ERROR_CHARS);
  if (error.message.length > MAX_CAUSE_CHARS) error.message = error.message.slice(0, MAX_CAUSE_CHARS);
  return error;
}

/**
 * The handler as the engine calls it: the shim's timeout copy taken out of the input, the timeout passed on, and a
 * failure's Error and Cause cut as Step Functions cuts them (cutLikeAws).
 */
function taskHandler(handler: TaskHandler, state: AslState): LocalHandler {
  const call = (input: unknown) => {
    if (state.TimeoutSecondsPath && input && typeof input === 'object' && TIMEOUT_PARAMETER in input) {
      const { [TIMEOUT_PARAMETER]: seconds, ...rest } = input as Record<string, unknown>;
      return handler(rest, { timeoutMs: Number(seconds) * 1000 });
    }
    return handler(input, state.TimeoutSeconds ? { timeoutMs: state.TimeoutSeconds * 1000 } : {});
  };
  return (async (input: unknown) => {
    try {
      return await call(input);
    } catch (error) {
      throw cutLikeAws(error);
    }
  }) as LocalHandler;
}

/** Substitute `${Name}` placeholders like CDK's definitionSubstitutions; refuse to run with any left over. */
export function loadDefinition(file: string, substitutions: Record<string, string>): Definition {
  const text = readFileSync(file, 'utf8').replace(
    /\$\{([A-Za-z0-9_]+)\}/g,
    (whole, name: string) => substitutions[name] ?? whole,
  );
  const left = /\$\{[A-Za-z0-9_]+\}/.exec(text);
  if (left) throw new Error(`${file}: no substitution for ${left[0]}`);
  return JSON.parse(text);
}

function toHistoryEvent(event: EventLog, results: Map<string, unknown>): HistoryEvent {
  const out: HistoryEvent = { type: event.type, timestamp: event.timestamp };
  if ('state' in event && event.state) {
    out.state = event.state.name;
    out.state_type = event.state.type;
    if (event.type === 'StateEntered') out.input = event.state.input;
    if (event.type === 'StateExited') {
      out.output = event.state.output;
      if (results.has(out.state)) out.result = results.get(out.state);
    }
  }
  if ('Error' in event) {
    out.error = event.Error;
    out.cause = event.Cause;
  }
  if (event.type === 'StateRetried') out.retry_attempt = event.retry.attempt;
  if (event.type === 'ExecutionStarted') out.input = event.input;
  if (event.type === 'ExecutionSucceeded') out.output = event.output;
  return out;
}

export interface LocalWorkflowOptions {
  name: string;
  file: string;
  substitutions: Record<string, string>;
  /** Resource (ARN) → handler. Every Task state's Resource must have one. */
  resources: Record<string, TaskHandler>;
  /** Tests only: shorten Retry waits (ms) per state. */
  retryIntervalOverrides?: Record<string, number | number[]>;
}

/**
 * The definitions (as JSON text) this process has validated already: a gateway started again in the same process (the
 * tests start hundreds) does not validate the same three files again, asl-validator compiling its schema each time
 * (a restart took 1.8-2.7 s at load 9-14 with it, 60-140 ms without).
 */
const validatedDefinitions = new Set<string>();

export class LocalWorkflow {
  readonly name: string;
  /** The definition's TimeoutSeconds, ms: the engine ends an execution there (null: no limit). */
  readonly timeoutMs: number | null;
  private readonly definition: Definition;
  private readonly machines = new Map<string, StateMachine>();
  private readonly handlers: Record<string, LocalHandler>;
  /** Task states whose output is not their task's result (ResultSelector, ResultPath or OutputPath). */
  private readonly reshaping = new Set<string>();
  private readonly retryIntervalOverrides?: Record<string, number | number[]>;

  constructor(options: LocalWorkflowOptions) {
    this.name = options.name;
    this.definition = loadDefinition(options.file, options.substitutions);
    const timeoutSeconds = this.definition.TimeoutSeconds;
    this.timeoutMs = typeof timeoutSeconds === 'number' ? timeoutSeconds * 1000 : null;
    resolveTimeoutsLikeAws(this.definition.States);
    this.handlers = {};
    for (const [stateName, state] of Object.entries(this.definition.States)) {
      if (state.Type !== 'Task') continue;
      const handler = options.resources[state.Resource ?? ''];
      if (!handler) throw new Error(`${options.file}: no local handler for ${stateName} (${state.Resource})`);
      this.handlers[stateName] = taskHandler(handler, state);
      if (state.OutputPath !== undefined || state.ResultSelector !== undefined || state.ResultPath !== undefined)
        this.reshaping.add(stateName);
    }
    this.machine(this.definition.StartAt);
    this.retryIntervalOverrides = options.retryIntervalOverrides;
  }

  private machine(startAt: string): StateMachine {
    let machine = this.machines.get(startAt);
    if (!machine) {
      const definition =
        startAt === this.definition.StartAt ? this.definition : definitionFrom(this.definition, startAt);
      const text = JSON.stringify(definition);
      const validated = validatedDefinitions.has(text);
      machine = new StateMachine(definition as never, {
        validationOptions: validated ? { noValidate: true } : { checkArn: true, checkPaths: true },
      });
      validatedDefinitions.add(text);
      trackStateContext(machine);
      limitStateOutputs(machine);
      this.machines.set(startAt, machine);
    }
    return machine;
  }

  /**
   * Each Task handler of one execution, wrapped so that the observer (if any) sees it enter and exit, and so that
   * the result of a state that reshapes it (`reshaping`) is kept for its StateExited event.
   */
  private perExecution(observer: TaskObserver | undefined, results: Map<string, unknown>) {
    if (!observer && this.reshaping.size === 0) return this.handlers;
    return Object.fromEntries(
      Object.entries(this.handlers).map(([state, handler]) => {
        const keep = this.reshaping.has(state);
        if (!observer && !keep) return [state, handler];
        const parameterized = this.definition.States[state]?.Parameters !== undefined;
        const run = handler as unknown as TaskHandler;
        const wrapped: TaskHandler = async (input) => {
          await observer?.enter(state, parameterized ? input : undefined);
          let output: unknown;
          try {
            output = await run(input);
          } catch (error) {
            observer?.fail(state, error);
            throw error;
          }
          if (keep) results.set(state, output);
          await observer?.exit(state, output);
          return output;
        };
        return [state, wrapped as unknown as LocalHandler];
      }),
    );
  }

  /** Run one execution to its end. Never throws for a failed execution: the status says how it ended. */
  async run(input: unknown, executionName: string, options: RunOptions = {}): Promise<EndedExecution> {
    const startedAt = new Date();
    const results = new Map<string, unknown>();
    const handlers = this.perExecution(options.observer, results);
    const execution = this.machine(options.startAt ?? this.definition.StartAt).run(input as never, {
      overrides: { taskResourceLocalHandlers: handlers, retryIntervalOverrides: this.retryIntervalOverrides },
      context: {
        Execution: {
          Id: `arn:aws:states:us-east-1:000000000000:express:${this.name}:${executionName}`,
          Name: executionName,
          Input: input as never,
          StartTime: startedAt.toISOString(),
        },
        StateMachine: { Id: `arn:aws:states:us-east-1:000000000000:stateMachine:${this.name}`, Name: this.name },
        // Filled in state by state (trackStateContext).
        State: {},
      } as never,
    });
    const events: HistoryEvent[] = [];
    const collecting = (async () => {
      for await (const event of execution.eventLogs) {
        const history = toHistoryEvent(event, results);
        events.push(history);
        options.onEvent?.(history);
      }
    })();
    let status: ExecutionStatus = 'SUCCEEDED';
    let output: unknown;
    try {
      output = await execution.result;
    } catch {
      status = 'FAILED';
    }
    await collecting;
    const last = events.at(-1);
    if (last?.type === 'ExecutionTimeout') status = 'TIMED_OUT';
    if (last?.type === 'ExecutionAborted') status = 'ABORTED';
    const record: EndedExecution = {
      execution_name: executionName,
      state_machine: this.name,
      status,
      started_at: startedAt.toISOString(),
      stopped_at: new Date().toISOString(),
      input,
      events,
    };
    if (status === 'SUCCEEDED') record.output = output;
    const failed = events.find((e) => e.type === 'ExecutionFailed');
    if (failed) {
      record.error = failed.error;
      record.cause = typeof failed.cause === 'string' ? failed.cause : JSON.stringify(failed.cause);
    }
    return record;
  }
}
