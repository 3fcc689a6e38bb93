// llama.cpp's prompt and generation speed on a GGUF file, for the side-by-side figures of
// docs/PERFORMANCE.md: pp (one evaluation of N random prompt tokens) and tg (N tokens, one
// at a time), as palaver bench measures them, on the CPU with the given threads.
//
// It drives the llama.cpp that the npm package node-llama-cpp ships (3.21.1: llama.cpp
// release v0.4.0, the build ../shared/ref's pending cases come from), installed outside
// the project:  mkdir /tmp/nlc && cd /tmp/nlc && npm i -E node-llama-cpp@3.21.1
//
//   NODE_PATH=/tmp/nlc/node_modules node tools/llamacpp_bench.mjs MODEL [-p 512] [-n 128]
//                                     [-r 3] [-t 2] [-b 512]
//
// Prints one JSON object per test: t/s per repetition (wall clock), their mean, and t/s by
// the process's CPU time (tokens / (CPU seconds / threads)), palaver bench's second figure
// for a shared machine.  Each test runs once untimed first, like palaver bench.
import { createRequire } from "node:module";
import { cpuUsage } from "node:process";

const require = createRequire(import.meta.url);
const { getLlama, LlamaLogLevel } = await import(require.resolve("node-llama-cpp"));

const args = process.argv.slice(2);
const opt = { p: 512, n: 128, r: 3, t: 2, b: 512 };
let model = null;
for (let i = 0; i < args.length; i++) {
	const a = args[i];
	if (/^-[pnrtb]$/.test(a) && i + 1 < args.length) opt[a[1]] = Number(args[++i]);
	else if (!model) model = a;
	else throw new Error(`unknown argument '${a}'`);
}
if (!model) throw new Error("usage: llamacpp_bench.mjs MODEL [-p N] [-n N] [-r N] [-t N] [-b N]");

const llama = await getLlama({ gpu: false, maxThreads: opt.t, logLevel: LlamaLogLevel.error });
const m = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
const ctx = await m.createContext({
	contextSize: opt.p + opt.n + 64,
	batchSize: opt.b,
	threads: { ideal: opt.t, min: opt.t },
	sequences: 1,
});
const nVocab = m.tokens.nTokens ?? 512;
let seed = 12345;
const rand = () => {
	seed = (seed * 1664525 + 1013904223) >>> 0;
	return 3 + ((seed >>> 8) % (nVocab - 3));
};

async function once(kind) {
	const seq = ctx.getSequence();
	const tokens = Array.from({ length: kind === "pp" ? opt.p : 1 }, rand);
	const c0 = cpuUsage(), t0 = process.hrtime.bigint();
	if (kind === "pp") {
		await seq.evaluateWithoutGeneratingNewTokens(tokens);
	} else {
		/* decode steps of random tokens, as palaver bench's tg: no sampling */
		for (let i = 0; i < opt.n; i++)
			await seq.evaluateWithoutGeneratingNewTokens([i ? rand() : tokens[0]]);
	}
	const wall = Number(process.hrtime.bigint() - t0) / 1e9, cu = cpuUsage(c0);
	const cpu = (cu.user + cu.system) / 1e6;
	seq.dispose();
	return { wall, cpu };
}

for (const kind of ["pp", "tg"]) {
	const n = kind === "pp" ? opt.p : opt.n;
	if (!n) continue;
	await once(kind); /* warm-up */
	const ts = [];
	let cpu = 0;
	for (let r = 0; r < opt.r; r++) {
		const x = await once(kind);
		ts.push(n / x.wall);
		cpu += x.cpu;
	}
	const mean = ts.reduce((a, b) => a + b, 0) / ts.length;
	console.log(JSON.stringify({
		test: `${kind}${n}`, model, threads: opt.t, batch: opt.b,
		t_s: ts.map((v) => +v.toFixed(3)), t_s_mean: +mean.toFixed(3),
		t_s_cpu: +((n * opt.r) / (cpu / opt.t)).toFixed(3),
		llama_cpp: "node-llama-cpp 3.21.1 (llama.cpp release v0.4.0), CPU",
	}));
}
await ctx.dispose();
await m.dispose();
