// The synthetic ~1B model (TinyLlama shape, bf16) split into 4 stages: a 1,500-token prompt
// crosses every stage in chunks below the broker's message limit and gives exactly the
// in-process output; each worker's RSS stays within 1.15x its share of the weights plus its
// KV budget plus a fixed overhead.
#include <algorithm>

#include "bus/consumer.h"
#include "fleet/deployment.h"
#include "util/process_memory.h"
#include "generate/generate.h"
#include "model/tensor_store.h"
#include "support/stack_env.h"
#include "synthetic_models.h"
#include "test_support.h"
#include "wire/activation_codec.h"

namespace fleet::test {
namespace {

constexpr size_t kFixedOverheadBytes = size_t{96} << 20;  // runtime, librdkafka, protobuf, tokenizer, heap
constexpr const char* kKvBudget = "128MiB";
constexpr size_t kKvBudgetBytes = size_t{128} << 20;

// A prompt of at least 1,500 tokens under the model's tokenizer.
std::string long_prompt(const Tokenizer& tok, size_t* n_tokens) {
  const char* words[] = {"once", "upon", "a", "time", "there", "was", "little", "girl", "named", "lily",
                         "she", "loved", "to", "play", "outside", "in", "the", "park", "big", "red", "ball"};
  std::string text;
  for (size_t i = 0;; ++i) {
    text += (i ? " " : "") + std::string(words[(i * 7 + i / 5) % 21]);
    if (i % 50 == 49) {
      *n_tokens = encode_prompt(tok, text).size();
      if (*n_tokens >= 1500) return text;
    }
  }
}

// Bytes of the weights stage [first, end) holds, as stored in the file.
size_t stage_share(const ModelSource& src, int first, int end) {
  size_t n = layer_file_bytes(src, first, end);
  if (first == 0) n += src.store->find(kEmbedName)->nbytes;
  if (end == src.config.n_layers) n += src.store->find(kFinalNormName)->nbytes + src.store->find(kHeadName)->nbytes;
  return n;
}

TEST(FleetLargeModel, FourStagesOfOneBillionModelLongPromptAndMemory) {
  const std::string model = synthetic_1b();
  ModelSource src = open_model(model);
  auto tok = Tokenizer::load(model);
  size_t n_prompt = 0;
  const std::string prompt = long_prompt(*tok, &n_prompt);
  const int max_tokens = 4;

  GenerateResult ref;
  {  // the whole model in this process, released before the fleet runs
    auto weights = std::make_shared<StageWeights>(load_stage_weights(src, {}));
    StageEngine engine(weights);
    GenerateParams p;
    p.max_tokens = max_tokens;
    p.sampling.temperature = 0;
    ref = generate(engine, *tok, encode_prompt(*tok, prompt), p);
    std::printf("in-process: %zu prompt tokens, prefill %.1f s, output %zu tokens\n", n_prompt, ref.prefill_seconds,
                ref.tokens.size());
  }

  DeploymentOptions o;
  o.name = "fleet-1b";
  o.model_path = model;
  o.tokenizer = model;
  o.model_name = "llama-1b-synthetic";
  o.stages = {{0, 6, 1}, {6, 11, 1}, {11, 17, 1}, {17, 22, 1}};
  o.kv_budget = kKvBudget;
  Deployment d(o);
  auto got = d.run({{"long-0", greedy_record("long-0", prompt, max_tokens)}}, std::chrono::seconds(600));
  const Completion& c = got["long-0"];
  ASSERT_EQ(c.error_code, "") << c.text;
  EXPECT_EQ(c.prompt_tokens, static_cast<int>(n_prompt));
  EXPECT_GE(c.prompt_tokens, 1500);
  EXPECT_EQ(c.tokens, ref.tokens);
  EXPECT_EQ(c.text, ref.text);

  // Memory: each worker holds its share of the weights, not the model.
  for (size_t i = 0; i < d.workers().size(); ++i) {
    const auto& st = d.config().stages[i];
    const size_t share = stage_share(src, st.first, st.end);
    const size_t rss = resident_bytes(d.workers()[i].pid);
    const double bound = 1.15 * static_cast<double>(share) + static_cast<double>(kKvBudgetBytes + kFixedOverheadBytes);
    std::printf("stage %zu layers [%d, %d): share %.1f MiB, RSS %.1f MiB, bound %.1f MiB "
                "(1.15 x share + KV budget %zu MiB + fixed overhead %zu MiB)\n",
                i, st.first, st.end, static_cast<double>(share) / (1 << 20), static_cast<double>(rss) / (1 << 20),
                bound / (1 << 20), kKvBudgetBytes >> 20, kFixedOverheadBytes >> 20);
    EXPECT_GT(rss, share / 2) << "stage " << i << " should have its layers resident";
    EXPECT_LE(static_cast<double>(rss), bound) << "stage " << i;
  }

  // Chunking: the prefill's hidden states (256 rows x 2048 x f32 = 2 MiB per step) crossed
  // stage 1's topic in several records, each below the broker's limit.
  bus::Consumer topic(kafka_brokers(), unique_name("stage1-reader"), {d.config().stage_topic(1)});
  size_t records = 0, largest = 0;
  uint32_t most_chunks = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (most_chunks < 2 && std::chrono::steady_clock::now() < deadline) {
    for (const bus::Message& m : topic.poll_batch(256, 200)) {
      ++records;
      largest = std::max(largest, m.value.size());
      ActivationMsg msg;
      ASSERT_TRUE(msg.ParseFromString(m.value));
      most_chunks = std::max(most_chunks, msg.chunk_count());
    }
  }
  std::printf("stage 1 topic: read %zu records until a chunked step was seen; largest %zu bytes, %u chunks\n", records,
              largest, most_chunks);
  EXPECT_GE(most_chunks, 2u);
  EXPECT_LT(largest, d.config().kafka.max_message_bytes);
}

}  // namespace
}  // namespace fleet::test
