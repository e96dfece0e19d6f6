/**
 * A small writer of ONNX graphs: nodes, weights and typed inputs/outputs collected in order, then
 * encoded as a ModelProto (the `onnx-proto` schema) that onnxruntime loads from bytes. Graphs are
 * built at load time from a checkpoint's config and weights; none are stored.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** Opset of the default domain the graphs are written against (LayerNormalization needs 17). */
const OPSET = 17;
/** ONNX IR version matching opset 17. */
const IR_VERSION = 8;

type ElemType = 'float32' | 'int32';
/** A dimension: a fixed size or a named dynamic one. */
type Dim = number | string;
type AttrValue = number | number[] | string;

const ELEM: Record<ElemType, number> = { float32: onnx.TensorProto.DataType.FLOAT, int32: onnx.TensorProto.DataType.INT32 };

function valueInfo(name: string, type: ElemType, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, value: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  return Number.isInteger(value) && !Object.is(value, -0) ? { name, type: T.INT, i: value } : { name, type: T.FLOAT, f: value };
}

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  private fresh(hint: string): string {
    let name: string;
    do name = `${hint}_${this.counter++}`;
    while (this.names.has(name));
    this.names.add(name);
    return name;
  }

  input(name: string, type: ElemType, dims: Dim[]): string {
    this.names.add(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /**
   * Makes `value` a graph output called `name`. A value some node computes is renamed in place (an
   * Identity node would copy it on every run: for the KV cache, the whole cache per step). Returns
   * the name to use for the value from now on.
   */
  output(value: string, name: string, type: ElemType, dims: Dim[]): string {
    if (this.names.has(name)) throw new Error(`graph already has a value named '${name}'`);
    const producer = this.nodes.find((n) => n.output?.includes(value));
    if (producer && !this.inputs.some((i) => i.name === value)) {
      for (const n of this.nodes) {
        n.output = n.output?.map((o) => (o === value ? name : o));
        n.input = n.input?.map((i) => (i === value ? name : i));
      }
    } else {
      this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: `out_${name}` });
    }
    this.names.add(name);
    this.outputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** A constant tensor (weights, shapes, scalars). Float data is stored raw, little-endian. */
  weight(hint: string, data: Float32Array | Int32Array | number[], dims: number[], type: ElemType = 'float32'): string {
    const name = this.fresh(hint);
    const size = dims.reduce((a, b) => a * b, 1);
    if (data.length !== size) throw new Error(`weight '${hint}' has ${data.length} values for shape [${dims}]`);
    const typed = type === 'float32' ? Float32Array.from(data) : Int32Array.from(data);
    this.initializers.push({
      name,
      dims,
      dataType: ELEM[type],
      rawData: new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength),
    });
    return name;
  }

  /** int64 constant (Reshape shapes and Split sizes must be int64). */
  int64(hint: string, values: number[]): string {
    const name = this.fresh(hint);
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push({
      name,
      dims: [values.length],
      dataType: onnx.TensorProto.DataType.INT64,
      rawData: new Uint8Array(data.buffer),
    });
    return name;
  }

  scalar(hint: string, value: number): string {
    return this.weight(hint, [value], []);
  }

  /** Adds one node and returns its outputs' names. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, nOut = 1): string[] {
    const outputs = Array.from({ length: nOut }, () => this.fresh(opType.toLowerCase()));
    this.nodes.push({
      opType,
      input: inputs,
      output: outputs,
      name: this.fresh(`n_${opType}`),
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outputs;
  }

  /** One-output node. */
  op1(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.op(opType, inputs, attrs, 1)[0];
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  /** The encoded ModelProto. */
  encode(graphName: string): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: 'rlhf-chat',
      opsetImport: [{ domain: '', version: OPSET }],
      graph: {
        name: graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
