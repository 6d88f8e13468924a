// Run a TF.js graph model on float32 NHWC inputs with plain TensorFlow.js (CPU backend),
// for bench/convert_mobilefacenet.py to check its torch port against.
//   node bench/run_tfjs_graph.js MODEL.json WEIGHTS.bin INPUT.f32 N H W C OUTPUT.f32
// (NODE_PATH must reach @tensorflow/tfjs-core, tfjs-converter and tfjs-backend-cpu.)
const fs = require("fs");
const tf = require("@tensorflow/tfjs-core");
require("@tensorflow/tfjs-backend-cpu");
const tfconv = require("@tensorflow/tfjs-converter");

async function main() {
  const [modelPath, weightsPath, inputPath, n, h, w, c, outPath] = process.argv.slice(2);
  const graph = JSON.parse(fs.readFileSync(modelPath));
  const bin = fs.readFileSync(weightsPath);
  const weightSpecs = graph.weightsManifest.flatMap((g) => g.weights);
  const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  await tf.setBackend("cpu");
  const model = await tfconv.loadGraphModel(tf.io.fromMemory({ modelTopology: graph.modelTopology, weightSpecs, weightData }));
  const raw = fs.readFileSync(inputPath);
  const data = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const input = tf.tensor4d(data, [+n, +h, +w, +c]);
  const out = model.execute(input);
  fs.writeFileSync(outPath, Buffer.from((await out.data()).buffer));
}
main().catch((e) => { console.error(e); process.exit(1); });
