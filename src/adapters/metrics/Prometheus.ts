import type { Metric } from "effect"

/** The content type of the Prometheus text exposition format. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

const escapeHelp = (text: string) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")
const escapeLabel = (text: string) => text.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

const number = (value: number | bigint | undefined): string => {
  if (value === undefined) return "NaN"
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Infinity) return "+Inf"
  if (value === -Infinity) return "-Inf"
  return String(value)
}

const labels = (attributes: Metric.Metric.AttributeSet | undefined, extra?: readonly [string, string]) => {
  const pairs = Object.entries(attributes ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  if (extra !== undefined) pairs.push([extra[0], extra[1]])
  return pairs.length === 0 ? "" : `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`
}

const typeName = (type: Metric.Metric.Type): string => {
  switch (type) {
    case "Counter":
    case "Frequency":
      return "counter"
    case "Gauge": return "gauge"
    case "Histogram": return "histogram"
    case "Summary": return "summary"
  }
}

const samples = (snapshot: Metric.Metric.Snapshot): Array<string> => {
  const { id, attributes } = snapshot
  switch (snapshot.type) {
    case "Counter": return [`${id}${labels(attributes)} ${number(snapshot.state.count)}`]
    case "Gauge": return [`${id}${labels(attributes)} ${number(snapshot.state.value)}`]
    case "Frequency":
      return [...snapshot.state.occurrences].map(([word, count]) => `${id}${labels(attributes, ["value", word])} ${count}`)
    case "Histogram": {
      const { buckets, count, sum } = snapshot.state
      return [
        ...buckets.map(([le, n]) => `${id}_bucket${labels(attributes, ["le", number(le)])} ${n}`),
        `${id}_bucket${labels(attributes, ["le", "+Inf"])} ${count}`,
        `${id}_sum${labels(attributes)} ${number(sum)}`,
        `${id}_count${labels(attributes)} ${count}`
      ]
    }
    case "Summary": {
      const { quantiles, count, sum } = snapshot.state
      return [
        ...quantiles.map(([q, v]) => `${id}${labels(attributes, ["quantile", number(q)])} ${number(v)}`),
        `${id}_sum${labels(attributes)} ${number(sum)}`,
        `${id}_count${labels(attributes)} ${count}`
      ]
    }
  }
}

/**
 * Metric snapshots in the Prometheus text format (version 0.0.4): one family per metric id, with
 * its HELP and TYPE lines, its series sorted by their labels; families sorted by name.
 */
export const render = (snapshots: ReadonlyArray<Metric.Metric.Snapshot>): string => {
  const families = new Map<string, Array<Metric.Metric.Snapshot>>()
  for (const snapshot of snapshots) {
    const family = families.get(snapshot.id)
    if (family === undefined) families.set(snapshot.id, [snapshot])
    else family.push(snapshot)
  }
  const lines: Array<string> = []
  for (const id of [...families.keys()].sort()) {
    const family = families.get(id)!
    const first = family[0]!
    lines.push(`# HELP ${id} ${escapeHelp(first.description ?? id)}`)
    lines.push(`# TYPE ${id} ${typeName(first.type)}`)
    const series = family.map((s) => ({ key: labels(s.attributes), lines: samples(s) }))
    series.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    for (const s of series) lines.push(...s.lines)
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`
}
