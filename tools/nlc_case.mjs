// Make a reference case (../shared/ref/README.md, "pending/" format) with
// llama.cpp as the npm package node-llama-cpp ships it: the prompt's tokens,
// the greedy continuation, and the log-probabilities after each position.
//
//   NODE_PATH=/work/nlc/node_modules node tools/nlc_case.mjs MODEL.gguf OUTDIR NAME \
//       [--prompt TEXT] [--gen N] [--kv f16|f32] [--mkmodel ARGS]
//
// Writes OUTDIR/NAME.json and OUTDIR/NAME.logprobs.f32 (rows x n_vocab
// little-endian float32: ln p(next token) after each of prompt_tokens +
// gen_tokens[:-1]).  CPU only, 2 threads, no flash attention.  --mkmodel
// records the `palaver mkmodel` arguments that wrote MODEL (with {ref} for
// the reference folder), so that a test can write it again instead of
// keeping it.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(import.meta.url);
const nlcPath = require.resolve("node-llama-cpp", { paths: (process.env.NODE_PATH || "").split(":") });
const { getLlama } = await import(nlcPath);
const nlcVersion = JSON.parse(
	fs.readFileSync(path.join(path.dirname(nlcPath), "..", "package.json"), "utf8")).version;

const args = process.argv.slice(2);
const opt = (name, def) => {
	const i = args.indexOf(name);
	if (i < 0) return def;
	const v = args[i + 1];
	args.splice(i, 2);
	return v;
};
const prompt = opt("--prompt",
	"Once upon a time there was a little dog who liked to run and play in the park with his friends.");
const nGen = Number(opt("--gen", "16"));
const kv = opt("--kv", "f16").toUpperCase();
const mkmodel = opt("--mkmodel", null);
if (args.length !== 3) {
	console.error("usage: nlc_case.mjs MODEL.gguf OUTDIR NAME [--prompt TEXT] [--gen N] [--kv f16|f32] " +
		"[--mkmodel ARGS]");
	process.exit(2);
}
const [modelPath, outDir, name] = args;

const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
// with BOS where the vocabulary asks for it, as llama.cpp's tools do
const promptTokens = model.tokenize(prompt, false);
if (model.tokens.shouldPrependBosToken && model.tokens.bos != null)
	promptTokens.unshift(model.tokens.bos);
const total = promptTokens.length + nGen;
const context = await model.createContext({
	contextSize: Math.max(64, total + 8), batchSize: Math.max(64, total + 8), threads: 2,
	flashAttention: false, experimentalKvCacheKeyType: kv, experimentalKvCacheValueType: kv,
});
const seq = context.getSequence();

// One probability row after each token: the prompt in one batch, then the
// greedy tokens one at a time.
const rows = [];
const item = (t) => [t, { generateNext: { probabilities: true } }];
let out = await seq.controlledEvaluate(promptTokens.map(item));
for (const o of out) rows.push(o.next.probabilities);
const gen = [];
for (let j = 0; j < nGen; j++) {
	const probs = rows[rows.length - 1];
	const next = probs.entries().next().value[0]; // the map is sorted, highest first
	gen.push(next);
	if (j + 1 < nGen) {
		out = await seq.controlledEvaluate([item(next)]);
		rows.push(out[0].next.probabilities);
	}
}

// every row holds every token of the vocabulary
const vocab = rows[0].size;
if (rows.some((r) => r.size !== vocab)) throw new Error("rows of different sizes");
const buf = Buffer.alloc(rows.length * vocab * 4);
rows.forEach((probs, r) => {
	for (let i = 0; i < vocab; i++) {
		const p = probs.get(i) ?? 0;
		buf.writeFloatLE(p > 0 ? Math.log(p) : -Infinity, (r * vocab + i) * 4);
	}
});
fs.writeFileSync(path.join(outDir, `${name}.logprobs.f32`), buf);
const text = model.detokenize(gen);
const json = {
	model: path.basename(modelPath),
	prompt,
	n_vocab: vocab,
	prompt_tokens: Array.from(promptTokens),
	gen_tokens: gen,
	gen_text: text,
	rows: rows.length,
	logprobs_file: `${name}.logprobs.f32`,
	reference: `llama.cpp as shipped in node-llama-cpp ${nlcVersion}, CPU, ${kv} KV cache, 2 threads`,
	values: "log-probabilities (log softmax of the logits), one row per evaluated position",
};
if (mkmodel) json.mkmodel = mkmodel;
fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(json, null, 1) + "\n");
await context.dispose();
await model.dispose();
console.log(`${name}: ${rows.length} rows of ${vocab}, greedy ${JSON.stringify(gen)}`);
