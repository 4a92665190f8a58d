/**
 * Just enough of the Node-RED runtime (`RED`) to load node-red-contrib-blynk-ws 1.0.10 outside
 * Node-RED: its node modules are `module.exports = (RED) => { … RED.nodes.registerType(…) }`, and
 * they use RED.nodes.createNode (which makes `this` a Node: an EventEmitter with log/warn/error/
 * status/send), RED.nodes.getNode (config node by id), RED._ (i18n) and RED.util.ensureString.
 * Everything on the network is the package's own code (its `ws` WebSocket client).
 */
import { EventEmitter } from "node:events"
import { createRequire } from "node:module"

const require = createRequire(import.meta.url)

/** What Node-RED's Node gives every node: an EventEmitter plus logging, status and output. */
export class StubNode extends EventEmitter {
  id = ""
  type = ""
  /** Messages the node sent to its output (`node.send(msg)`); each is also emitted as 'sent'. */
  readonly outputs: Array<Record<string, unknown>> = []
  /** Its log lines (log, warn, error, status), for failure reports. */
  readonly lines: Array<string> = []
  log(text: unknown) {
    this.lines.push(`log ${String(text)}`)
  }
  warn(text: unknown) {
    this.lines.push(`warn ${String(text)}`)
  }
  // Node-RED's Node#error logs; it does not emit 'error'.
  error(text: unknown) {
    this.lines.push(`error ${String(text)}`)
  }
  status(status: unknown) {
    this.lines.push(`status ${JSON.stringify(status)}`)
  }
  send(msg: Record<string, unknown>) {
    this.outputs.push(msg)
    this.emit("sent", msg)
  }
}

type NodeConstructor = new (config: Record<string, unknown>) => StubNode

export interface Red {
  readonly nodes: {
    readonly createNode: (node: StubNode, config: Record<string, unknown>) => void
    readonly registerType: (type: string, constructor: NodeConstructor) => void
    readonly getNode: (id: string) => StubNode | undefined
  }
  readonly _: (key: string) => string
  readonly util: { readonly ensureString: (value: unknown) => string }
}

/** A runtime with the package's client, write-in, write-out and sync node types registered. */
export const makeRuntime = () => {
  const types = new Map<string, NodeConstructor>()
  const instances = new Map<string, StubNode>()
  const RED: Red = {
    nodes: {
      createNode: (node, config) => {
        // Node-RED's Node constructor: EventEmitter state, id, type.
        EventEmitter.call(node)
        Object.assign(node, { outputs: [], lines: [], id: String(config.id), type: String(config.type) })
        instances.set(String(config.id), node)
      },
      registerType: (type, constructor) => {
        // Node-RED does util.inherits(constructor, Node); methods are added to the prototype after.
        Object.setPrototypeOf(constructor.prototype, StubNode.prototype)
        types.set(type, constructor)
      },
      getNode: (id) => instances.get(id)
    },
    _: (key) => key,
    util: {
      ensureString: (value) =>
        typeof value === "string" ? value : Buffer.isBuffer(value) ? value.toString() : typeof value === "object" ? JSON.stringify(value) : String(value)
    }
  }
  const load = (file: string) => (require(`node-red-contrib-blynk-ws/nodes/${file}`) as (red: Red) => void)(RED)
  load("blynk-ws-client.js")
  load("blynk-ws-in-write.js")
  load("blynk-ws-out-write.js")
  load("blynk-ws-out-sync.js")

  const create = (type: string, config: Record<string, unknown>): StubNode => {
    const constructor = types.get(type)
    if (constructor === undefined) throw new Error(`node type ${type} not registered`)
    return new constructor({ type, ...config })
  }
  return { RED, create, instances }
}

/** The config node's fields the tests look at. */
export interface BlynkWsClient extends StubNode {
  logged: boolean
  pinger: ReturnType<typeof setInterval>
  websocket?: { readyState: number }
}

/**
 * Closes every node the way Node-RED does on a redeploy ('close' with removed=false, so the
 * client terminates its WebSocket and, being closed, does not reconnect) and stops the client's
 * one-second ping timer, which the package itself never clears.
 */
export const closeAll = async (runtime: ReturnType<typeof makeRuntime>) => {
  for (const node of runtime.instances.values()) {
    await new Promise<void>((resolve) => {
      if (node.listenerCount("close") === 0) return resolve()
      node.emit("close", false, () => resolve())
      // Nodes whose close handler takes no `done` are finished once it returned.
      resolve()
    })
    const pinger = (node as Partial<BlynkWsClient>).pinger
    if (pinger !== undefined) clearInterval(pinger)
  }
}
