import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { SERVER_CORE, pin } from './cores.js'

/** What a scenario passes to the servers it starts (a Redis URL, a key prefix): strings, sent on the command line. */
export type ServerParams = Readonly<Record<string, string>>
/** What a scenario module exports for `startServer`: named builders of the apps it measures. */
export type ServerFactories = Record<string, (params: ServerParams) => Promise<FastifyInstance>>
/** What a scenario module exports for `runTask`: work that must run in a fresh process of its own. */
export type TaskFunctions = Record<string, () => Promise<unknown>>
/**
 * What a scenario module exports for `startWorker`: builders of a process's state (an app), each answering the
 * measurement to take of it, as often as the parent asks.
 */
export type WorkerFactories = Record<string, () => Promise<() => Promise<unknown>>>

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url))

export interface ServerHandle {
  readonly url: string
  /** CPU time (user + system, µs) the server's process has used so far. */
  cpuMicros (): Promise<number>
  /** Heap used (bytes) after a forced full GC in the server's process: it must have been started with `--expose-gc`. */
  heapUsed (): Promise<number>
  /** Starts the inspector's sampling profiler in the server's process. */
  startProfile (): Promise<void>
  /** Stops it, answering the profile (the inspector's `Profiler.Profile`). */
  stopProfile (): Promise<unknown>
  stop (): Promise<void>
}

function spawn (mode: 'serve' | 'task' | 'work', module: string, name: string, nodeFlags: string[], params: ServerParams = {}): ChildProcess {
  // TypeScript through tsx's loader; the parent's own flags (tsx's, inspector's) are not inherited.
  const child = fork(CHILD, [mode, module, name, JSON.stringify(params)], { execArgv: ['--import', 'tsx', ...nodeFlags], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  pin(child.pid, SERVER_CORE)
  return child
}

/** The first message of a child, or its failure: a child that exits before sending one failed to start. */
function firstMessage<T> (child: ChildProcess, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const exited = (code: number | null): void => { reject(new Error(`${what} exited with code ${String(code)} before answering`)) }
    child.once('exit', exited)
    child.once('error', reject)
    child.once('message', (message) => {
      // Asked again for every measurement (CPU time): each answer leaves no listener behind.
      child.off('exit', exited)
      child.off('error', reject)
      resolve(message as T)
    })
  })
}

/**
 * Starts the server `name` exported by `module` (a path) in a child process of its own, listening on 127.0.0.1:
 * the client measuring it runs in this process, so the two never share an event loop. `params` go to its builder,
 * `nodeFlags` to Node.
 */
export async function startServer (module: string, name: string, params: ServerParams = {}, nodeFlags: string[] = []): Promise<ServerHandle> {
  const child = spawn('serve', module, name, nodeFlags, params)
  const { port } = await firstMessage<{ port: number }>(child, `server "${name}"`)
  const ask = async <T>(question: string): Promise<T> => {
    const answer = firstMessage<T>(child, `server "${name}"`)
    child.send(question)
    return await answer
  }
  return {
    url: `http://127.0.0.1:${port}`,
    cpuMicros: async () => (await ask<{ cpuMicros: number }>('cpu')).cpuMicros,
    heapUsed: async () => (await ask<{ heapUsed: number }>('heap')).heapUsed,
    startProfile: async () => { await ask('profile-start') },
    stopProfile: async () => (await ask<{ profile: unknown }>('profile-stop')).profile,
    stop: async () => { await stopChild(child) }
  }
}

/** Disconnects a child (which then closes what it holds and exits), resolving once it has exited. */
function stopChild (child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) { resolve(); return }
    child.once('exit', () => { resolve() })
    child.disconnect()
  })
}

export interface WorkerHandle<T> {
  /** One measurement of the worker's state, taken in its process. */
  measure (): Promise<T>
  stop (): Promise<void>
}

/**
 * Builds the state `name` exported by `module` (`workers`) in a child process of its own, kept for the life of the
 * handle: processes whose state differs (an option on or off for an app's whole life) are measured in turn, a short
 * measurement each, so that the ratios of one round are taken close together in time.
 */
export async function startWorker<T> (module: string, name: string, nodeFlags: string[] = []): Promise<WorkerHandle<T>> {
  const child = spawn('work', module, name, nodeFlags)
  await firstMessage(child, `worker "${name}"`)
  return {
    measure: async () => {
      const answer = firstMessage<{ result: T }>(child, `worker "${name}"`)
      child.send('measure')
      return (await answer).result
    },
    stop: async () => { await stopChild(child) }
  }
}

/** Runs the task `name` exported by `module` in a fresh child process (with extra Node flags) and returns its result. */
export async function runTask<T> (module: string, name: string, nodeFlags: string[] = []): Promise<T> {
  const child = spawn('task', module, name, nodeFlags)
  const { result } = await firstMessage<{ result: T }>(child, `task "${name}"`)
  return result
}
