// kafkajs side of sprat's end-to-end client suite, driven by tests/clients/kclients.py.
//
//   node driver.js COMMAND IN.json OUT.json
//
// Reads the command's parameters from IN.json and writes {..result} or {error: "..."} to OUT.json.
// Keys, values and header values travel base64-encoded. Every command is bounded by
// IN.timeoutMs: past it, the driver writes a timeout error and exits.
'use strict'

const fs = require('fs')
const { Kafka, CompressionTypes, ConfigResourceTypes } = require('kafkajs')

const [command, inPath, outPath] = process.argv.slice(2)
const spec = JSON.parse(fs.readFileSync(inPath, 'utf8'))

let finished = false
function finish(result, code) {
  if (finished) return
  finished = true
  fs.writeFileSync(outPath, JSON.stringify(result))
  // Leave at once: kafkajs may still have timers or sockets open after an error.
  process.exit(code)
}

const timer = setTimeout(
  () => finish({ error: `timed out after ${spec.timeoutMs} ms (${progress()})` }, 2),
  spec.timeoutMs || 60000
)
let progress = () => 'no progress reported'

// spec.ssl: {ca, cert, key} file paths (each optional); spec.sasl: kafkajs's own
// {mechanism, username, password}.
function tlsOptions(ssl) {
  if (!ssl) return undefined
  const read = p => (p ? fs.readFileSync(p) : undefined)
  return { ca: ssl.ca ? [read(ssl.ca)] : undefined, cert: read(ssl.cert), key: read(ssl.key) }
}
const kafka = new Kafka({
  clientId: 'sprat-e2e',
  brokers: spec.brokers,
  ssl: tlsOptions(spec.ssl),
  sasl: spec.sasl,
})
const b64 = b => (b === null || b === undefined ? null : Buffer.from(b).toString('base64'))
const unb64 = s => (s === null || s === undefined ? null : Buffer.from(s, 'base64'))

function describe(e) {
  let s = `${e.name || 'Error'}: ${e.message}`
  if (e.type) s += ` [type ${e.type}]`
  if (e.code !== undefined) s += ` [code ${e.code}]`
  if (e.retryCount !== undefined) s += ` [retries ${e.retryCount}]`
  if (e.originalError) s += ` (caused by ${describe(e.originalError)})`
  return s
}

async function withAdmin(fn) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

const commands = {
  async createPartitions() {
    await withAdmin(admin =>
      admin.createPartitions({ topicPartitions: spec.topicPartitions, timeout: 10000 })
    )
    return {}
  },
  async alterTopicConfigs() {
    await withAdmin(admin =>
      admin.alterConfigs({
        validateOnly: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: spec.topic, configEntries: spec.configEntries }],
      })
    )
    return {}
  },
  async describeTopicConfigs() {
    const described = await withAdmin(admin =>
      admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: spec.topic, configNames: spec.configNames }],
      })
    )
    return { entries: described.resources[0].configEntries }
  },
  async describeCluster() {
    return await withAdmin(admin => admin.describeCluster())
  },
  async createTopics() {
    const created = await withAdmin(admin =>
      admin.createTopics({ topics: spec.topics, waitForLeaders: true, timeout: 10000 })
    )
    return { created }
  },

  async deleteTopics() {
    await withAdmin(admin => admin.deleteTopics({ topics: spec.topics, timeout: 10000 }))
    return {}
  },

  async listTopics() {
    return { topics: await withAdmin(admin => admin.listTopics()) }
  },

  async fetchTopicMetadata() {
    // Expected to fail for an unknown topic: report the error kafkajs raised as `caught`.
    try {
      const md = await withAdmin(admin => admin.fetchTopicMetadata({ topics: spec.topics }))
      return { metadata: md }
    } catch (e) {
      return { caught: describe(e) }
    }
  },

  async fetchTopicOffsets() {
    return { offsets: await withAdmin(admin => admin.fetchTopicOffsets(spec.topic)) }
  },

  async produce() {
    const producer = kafka.producer(spec.producer || {})
    await producer.connect()
    const byTopic = new Map()
    for (const m of spec.messages) {
      if (!byTopic.has(m.topic)) byTopic.set(m.topic, [])
      const headers = {}
      for (const [k, v] of m.headers) headers[k] = unb64(v)
      const msg = { key: unb64(m.key), value: unb64(m.value), headers }
      if (m.partition !== null && m.partition !== undefined) msg.partition = m.partition
      byTopic.get(m.topic).push(msg)
    }
    const codecs = { gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD }
    const compression = spec.compression ? codecs[spec.compression] : CompressionTypes.None
    const results = []
    let sent = 0
    progress = () => `${sent} of ${spec.messages.length} messages acknowledged`
    try {
      // Batches of up to 500 messages per request, as an application would send them.
      for (const [topic, msgs] of byTopic) {
        for (let i = 0; i < msgs.length; i += 500) {
          const chunk = msgs.slice(i, i + 500)
          results.push(...(await producer.send({ topic, messages: chunk, compression })))
          sent += chunk.length
        }
      }
    } finally {
      await producer.disconnect()
    }
    return { results }
  },

  // Consumes with a consumer group (kafkajs has no other way) from the beginning of each topic
  // until `limit` messages were seen; with `commit`, commits the next offset of each partition it
  // consumed, then reads the committed offsets back.
  async consume() {
    const consumer = kafka.consumer({ groupId: spec.groupId, ...(spec.consumer || {}) })
    const messages = []
    const crashes = []
    consumer.on(consumer.events.CRASH, e => crashes.push(describe(e.payload.error)))
    progress = () => `${messages.length} of ${spec.limit} messages consumed; crashes: ${crashes.join('; ') || 'none'}`
    await consumer.connect()
    try {
      for (const topic of spec.topics) await consumer.subscribe({ topic, fromBeginning: true })
      let done
      const allSeen = new Promise(resolve => (done = resolve))
      if (spec.limit === 0) done()
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ topic, partition, message, pause }) => {
          if (messages.length >= spec.limit) {
            pause()
            return
          }
          const headers = []
          for (const [k, v] of Object.entries(message.headers || {})) {
            for (const one of Array.isArray(v) ? v : [v]) headers.push([k, b64(one)])
          }
          messages.push({ topic, partition, offset: message.offset, key: b64(message.key), value: b64(message.value), headers })
          if (messages.length >= spec.limit) done()
        },
      })
      await allSeen
      const committed = {}
      if (spec.commit) {
        const next = new Map()
        for (const m of messages) next.set(`${m.topic}\u0000${m.partition}`, { topic: m.topic, partition: m.partition, offset: (BigInt(m.offset) + 1n).toString() })
        await consumer.commitOffsets([...next.values()])
      }
      if (spec.committedPartitions !== undefined) {
        const admin = kafka.admin()
        await admin.connect()
        try {
          for (const topic of spec.topics) {
            const res = await admin.fetchOffsets({ groupId: spec.groupId, topics: [topic] })
            for (const t of res) for (const p of t.partitions) committed[p.partition] = p.offset
          }
        } finally {
          await admin.disconnect()
        }
      }
      return { messages, committed }
    } finally {
      await consumer.disconnect()
    }
  },
}

if (!commands[command]) finish({ error: `unknown command ${command}` }, 64)
commands[command]()
  .then(result => {
    clearTimeout(timer)
    finish(result, 0)
  })
  .catch(e => {
    clearTimeout(timer)
    finish({ error: describe(e), stack: e.stack }, 1)
  })
