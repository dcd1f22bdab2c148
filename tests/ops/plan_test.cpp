// fleet plan's split (common/plan/planner.h) on a config.json of ~40 GiB of bf16 weights over
// workers of 16, 16 and 48 GiB; its refusal of a model larger than all of them; the config it
// writes, accepted by `fleet-stage --check`; and the planner's byte counts against what the
// loader actually holds for stories260K.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/deployment_config.h"
#include "model/model_writer.h"
#include "model/weights.h"
#include "plan/model_shape.h"
#include "plan/plan_config.h"
#include "plan/planner.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace fleet {
namespace {

constexpr uint64_t GiB = uint64_t{1} << 30;

// A Llama-2-style shape of `layers` layers: dim 6144, ffn 16384, 48 heads (GQA 8), 32k vocab, bf16.
std::string write_config_json(const std::string& name, int layers) {
  fs::path dir = fs::path(FLEET_BINARY_DIR) / "tests" / "ops" / name;
  fs::create_directories(dir);
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                      {"hidden_size", 6144},
                      {"intermediate_size", 16384},
                      {"num_hidden_layers", layers},
                      {"num_attention_heads", 48},
                      {"num_key_value_heads", 8},
                      {"vocab_size", 32000},
                      {"max_position_embeddings", 4096},
                      {"rms_norm_eps", 1e-5},
                      {"rope_theta", 10000.0},
                      {"tie_word_embeddings", false},
                      {"torch_dtype", "bfloat16"}};
  std::ofstream(dir / "config.json") << j.dump(2);
  return dir.string();
}

std::vector<PlanWorker> workers_16_16_48() {
  return parse_workers_yaml("- {name: small-a, memory: 16GiB}\n- {name: small-b, memory: 16GiB}\n"
                            "- {name: big, memory: 48GiB}\n",
                            "workers.yaml");
}

int run(const std::string& cmd, std::string* output) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  output->clear();
  while (size_t n = fread(buf, 1, sizeof buf, p)) output->append(buf, n);
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(Plan, SharesFollowUsableMemory) {
  const std::string dir = write_config_json("plan-40g", 54);
  ModelShape shape = read_model_shape(dir);
  // Per layer: 2*6144*6144 (q, o) + 2*6144*1024 (k, v) + 3*6144*16384 bf16 + 2 norms f32.
  const uint64_t layer = (2ull * 6144 * 6144 + 2ull * 1024 * 6144 + 3ull * 6144 * 16384) * 2 + 2 * 6144 * 4;
  EXPECT_EQ(shape.layer_bytes.at(0), layer);
  EXPECT_EQ(shape.embedding_bytes, 32000ull * 6144 * 2);
  const double total_gib = static_cast<double>(shape.total_bytes()) / GiB;
  EXPECT_GT(total_gib, 38);
  EXPECT_LT(total_gib, 42);

  PlanOptions o;
  o.overhead_bytes = 1 * GiB;
  o.kv_budget_bytes = 2 * GiB;
  Plan plan = plan_layers(shape, workers_16_16_48(), o);
  std::printf("%s", plan.table().c_str());
  ASSERT_EQ(plan.stages.size(), 3u);
  EXPECT_EQ(plan.total_usable_bytes, (13 + 13 + 45) * GiB);
  // Contiguous and complete.
  EXPECT_EQ(plan.stages[0].first, 0);
  EXPECT_EQ(plan.stages[0].end, plan.stages[1].first);
  EXPECT_EQ(plan.stages[1].end, plan.stages[2].first);
  EXPECT_EQ(plan.stages[2].end, 54);
  for (const PlannedStage& s : plan.stages) {
    // In proportion to usable memory, within one layer (whole layers only).
    const double ideal = s.ideal_share * static_cast<double>(shape.total_bytes());
    EXPECT_LE(std::fabs(static_cast<double>(s.weight_bytes) - ideal), static_cast<double>(layer)) << s.worker;
    EXPECT_LE(s.weight_bytes, s.usable_bytes) << s.worker;
  }
  EXPECT_NEAR(plan.stages[0].ideal_share, 13.0 / 71, 1e-9);
  EXPECT_NEAR(plan.stages[2].ideal_share, 45.0 / 71, 1e-9);
  // The 48 GiB machine holds about 45/13 as many layers as a 16 GiB one.
  const int small = plan.stages[1].end - plan.stages[1].first, big = plan.stages[2].end - plan.stages[2].first;
  EXPECT_GT(big, 3 * small);

  // The written config, accepted by fleet-stage --check (header only: no weights exist).
  PlannedConfigOptions c;
  c.tokenizer = std::string(FLEET_MODELS_DIR) + "/stories260K/tok512.bin";
  const std::string yaml = planned_config_yaml(plan, c);
  const std::string out = dir + "/deploy.yaml";
  std::ofstream(out) << yaml;
  DeploymentConfig cfg = load_config(out);
  ASSERT_EQ(cfg.stage_count(), 3);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(cfg.stage(k).first, plan.stages[k].first);
    EXPECT_EQ(cfg.stage(k).end, plan.stages[k].end);
  }
  EXPECT_EQ(cfg.kv.budget_bytes, 2 * GiB);
  EXPECT_EQ(cfg.model.path, fs::absolute(dir).lexically_normal().string());
  const std::string stage_bin = std::string(FLEET_BINARY_DIR) + "/services/fleet-stage/fleet-stage";
  std::string got;
  EXPECT_EQ(run(stage_bin + " --check --config " + out, &got), 0) << got;
  EXPECT_NE(got.find("54 layers"), std::string::npos) << got;
  EXPECT_NE(got.find("OK"), std::string::npos) << got;

  // The same config with a gap between stages is refused, naming it.
  std::string bad = yaml;
  const std::string cut = "[" + std::to_string(plan.stages[1].first) + ", " + std::to_string(plan.stages[1].end) + "]";
  ASSERT_NE(bad.find(cut), std::string::npos) << bad;
  bad.replace(bad.find(cut), cut.size(),
              "[" + std::to_string(plan.stages[1].first + 1) + ", " + std::to_string(plan.stages[1].end) + "]");
  std::ofstream(dir + "/bad.yaml") << bad;
  EXPECT_EQ(run(stage_bin + " --check --config " + dir + "/bad.yaml", &got), 1) << got;
  EXPECT_NE(got.find("FAIL"), std::string::npos) << got;
  // A stage that does not exist.
  EXPECT_EQ(run(stage_bin + " --check --stage 3 --config " + out, &got), 1) << got;
  EXPECT_EQ(run(stage_bin + " --check --stage 2 --config " + out, &got), 0) << got;
}

TEST(Plan, RefusesAModelLargerThanAllWorkers) {
  const std::string dir = write_config_json("plan-too-big", 120);
  ModelShape shape = read_model_shape(dir);
  PlanOptions o;  // 1 GiB overhead + 1 GiB KV each: 14 + 14 + 46 = 74 GiB usable
  const uint64_t usable = 74 * GiB;
  ASSERT_GT(shape.total_bytes(), usable);
  char shortfall[64];
  std::snprintf(shortfall, sizeof shortfall, "short by %.2f GiB",
                static_cast<double>(shape.total_bytes() - usable) / GiB);
  try {
    plan_layers(shape, workers_16_16_48(), o);
    FAIL() << "planned a model larger than the workers";
  } catch (const PlanError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(shortfall), std::string::npos) << m;
    EXPECT_NE(m.find("74.00 GiB usable"), std::string::npos) << m;
  }
  // fleet plan itself exits 1 with the same message.
  std::ofstream(dir + "/workers.yaml") << "- {name: a, memory: 16GiB}\n- {name: b, memory: 16GiB}\n- {name: c, memory: 48GiB}\n";
  std::string got;
  EXPECT_EQ(run(std::string(FLEET_BINARY_DIR) + "/services/fleet/fleet plan --model " + dir + " --workers " + dir +
                    "/workers.yaml --out " + dir + "/never.yaml",
                &got),
            1)
      << got;
  EXPECT_NE(got.find(shortfall), std::string::npos) << got;
  EXPECT_FALSE(fs::exists(dir + "/never.yaml"));
}

TEST(Plan, SpeedsWeightTheSplitWithinMemory) {
  const std::string dir = write_config_json("plan-speed", 52);
  ModelShape shape = read_model_shape(dir);
  auto workers = parse_workers_yaml("- {name: a, memory: 48GiB, speed: 1}\n- {name: b, memory: 48GiB, speed: 3}\n", "w");
  Plan plan = plan_layers(shape, workers, PlanOptions{});
  EXPECT_TRUE(plan.by_speed);
  EXPECT_NEAR(plan.stages[1].share, 0.75, 0.03);
}

TEST(Plan, BadWorkerFiles) {
  EXPECT_THROW(parse_workers_yaml("- {name: a}\n", "w"), PlanError);                      // no memory
  EXPECT_THROW(parse_workers_yaml("- {name: a, memory: lots}\n", "w"), PlanError);        // not a size
  EXPECT_THROW(parse_workers_yaml("- {name: a, memory: 1GiB, cores: 4}\n", "w"), PlanError);  // unknown key
  EXPECT_THROW(parse_workers_yaml("- {name: a, memory: 1GiB}\n- {name: a, memory: 1GiB}\n", "w"), PlanError);
  EXPECT_EQ(parse_workers_yaml("workers:\n  - {name: a, memory: 1.5GiB}\n", "w").at(0).memory_bytes, 3 * GiB / 2);
  // A worker whose memory the overhead and KV budget use up is named.
  const std::string dir = write_config_json("plan-small", 4);
  try {
    plan_layers(read_model_shape(dir), parse_workers_yaml("- {name: tiny, memory: 2GiB}\n", "w"), PlanOptions{});
    FAIL();
  } catch (const PlanError& e) {
    EXPECT_NE(std::string(e.what()).find("worker tiny"), std::string::npos) << e.what();
  }
}

// The planner's bytes per stage equal what load_stage_weights holds (stories260K, both dtypes).
TEST(Plan, BytesMatchTheLoader) {
  const std::string path = std::string(FLEET_MODELS_DIR) + "/stories260K/stories260K.bin";
  ASSERT_TRUE(fs::exists(path)) << path << " missing (scripts/fetch-models)";
  ModelSource src = open_model(path);
  for (const char* dtype : {"auto", "bf16", "q8_0"}) {
    ModelShape shape = read_model_shape(path, dtype);
    ASSERT_EQ(shape.n_layers(), src.config.n_layers);
    for (auto [a, b] : {std::pair{0, 2}, std::pair{2, 5}, std::pair{0, 5}, std::pair{1, 3}}) {
      LoadOptions lo;
      lo.layer_begin = a;
      lo.layer_end = b;
      lo.weight_dtype = dtype;
      StageWeights w = load_stage_weights(src, lo);
      EXPECT_EQ(shape.stage_bytes(a, b), w.bytes()) << dtype << " [" << a << ", " << b << ")";
    }
  }
}

// The same from a GGUF header: quantized matrices stay in their stored blocks (Q4_K, and the
// Q5_0 llama.cpp falls back to for rows that are not a multiple of 256), others as the loader
// converts them.
TEST(Plan, GgufBytesMatchTheLoader) {
  const std::string path = std::string(FLEET_BINARY_DIR) + "/tests/ops/plan-tiny-q4k.gguf";
  fs::create_directories(fs::path(path).parent_path());
  write_synthetic_gguf(synth_shape("tiny-k256"), parse_gguf_write_type("q4_k"), 7, path);
  ModelSource src = open_model(path);
  for (const char* dtype : {"auto", "q8_0"}) {
    ModelShape shape = read_model_shape(path, dtype);
    EXPECT_EQ(shape.source, "gguf");
    ASSERT_EQ(shape.n_layers(), 2);
    for (auto [a, b] : {std::pair{0, 1}, std::pair{1, 2}, std::pair{0, 2}}) {
      LoadOptions lo;
      lo.layer_begin = a;
      lo.layer_end = b;
      lo.weight_dtype = dtype;
      StageWeights w = load_stage_weights(src, lo);
      EXPECT_EQ(shape.stage_bytes(a, b), w.bytes()) << dtype << " [" << a << ", " << b << ")";
    }
  }
  // And the planner splits it.
  Plan plan = plan_layers(read_model_shape(path), parse_workers_yaml("- {name: a, memory: 8MiB}\n- {name: b, memory: 8MiB}\n", "w"),
                          PlanOptions{1 << 20, 1 << 20});
  EXPECT_EQ(plan.stages.at(1).end, 2);
}

// --balance compute: SmolLM2-135M (30 layers of 3.54M multiply-adds per token, a 28.3M head,
// an embedding that is a lookup) splits in 2 at layer 19, where the memory split (which counts
// the embedding's bytes on stage 0 and the tied head's on stage 1) cuts at 15.
TEST(Plan, ComputeBalanceCountsTheHeadAndNotTheEmbedding) {
  const ModelShape shape = read_model_shape(test::smollm2_gguf());
  EXPECT_EQ(shape.layer_macs, 576u * 576 * 2 + 576u * 192 * 2 + 3u * 576 * 1536);
  EXPECT_EQ(shape.head_macs, 576u * 49152);
  const auto workers = parse_workers_yaml("- {name: a, memory: 8GiB}\n- {name: b, memory: 8GiB}\n", "w");
  PlanOptions o;
  o.balance = PlanBalance::Compute;
  const Plan compute = plan_layers(shape, workers, o);
  EXPECT_EQ(compute.stages.at(0).end, 19);
  EXPECT_EQ(compute.stages.at(0).macs, 19 * shape.layer_macs);
  EXPECT_EQ(compute.stages.at(1).macs, 11 * shape.layer_macs + shape.head_macs);
  EXPECT_NEAR(compute.stages.at(0).share, 0.5, 0.02);
  EXPECT_EQ(compute.to_json().at("split_by"), "compute per token, equal shares (within usable memory)");
  const Plan memory = plan_layers(shape, workers, PlanOptions{});
  EXPECT_EQ(memory.stages.at(0).end, 15);
  // Speeds still set the shares: a worker twice as fast takes about two thirds of the compute.
  const Plan fast_first = plan_layers(
      shape, parse_workers_yaml("- {name: a, memory: 8GiB, speed: 2}\n- {name: b, memory: 8GiB, speed: 1}\n", "w"), o);
  EXPECT_NEAR(fast_first.stages.at(0).share, 2.0 / 3, 0.03);
}

}  // namespace
}  // namespace fleet
