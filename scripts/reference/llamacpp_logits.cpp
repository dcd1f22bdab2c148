// llama.cpp's own logits for a few token-id prompts: the helper behind
// scripts/reference/make-smollm2-llamacpp-reference (which compiles it against the static libraries
// that bench/anchors builds from llama-cpp-python 0.3.8's vendored llama.cpp, and turns its output
// into tests/fixtures/smollm2/llamacpp.json). Uses only llama.h's C API, CPU only.
//
//   llamacpp_logits MODEL.gguf PROMPTS.txt STRIDE TOP_K N_NEW N_THREADS > OUT.txt
//
// PROMPTS.txt: one prompt per line, "<hex of the rendered prompt's UTF-8> <id> <id> ...". The
// rendered text is only used for a check: llama_tokenize(add_special=false, parse_special=true)
// must give the same ids (reported, not enforced).
//
// For each prompt, in a context with n_ctx 512, n_batch = n_ubatch = 512 (default F16 KV cache,
// no flash attention), KV cache cleared before each prompt:
//   1. the whole prompt as ONE llama_decode batch, logits requested at every position;
//   2. N_NEW greedy steps: argmax of the last logits (lowest id on ties), the token then decoded
//      alone (one llama_decode per token, KV cache); never stops at end of turn / EOS.
//
// Output (text, one record per line, floats as %.9g so float32 round-trips):
//   I <llama_print_system_info()>
//   V <n_vocab>
//   P <prompt index> <n_prompt>
//   C <1 if llama_tokenize(rendered) == ids else 0> <llama_tokenize's ids>
//   L <pos> <logits[0]> <logits[STRIDE]> <logits[2*STRIDE]> ...   every prompt position
//   T <pos> <id>:<logit> ...                                      top TOP_K, every prompt position
//   G <greedy ids>                                                N_NEW ids
//   M <top-1 minus top-2 logit at each greedy step>
//   X <hex of the UTF-8 of the greedy ids' pieces (llama_token_to_piece, special=true)>
#include "llama.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

static void quiet_log(enum ggml_log_level level, const char *text, void *) {
    if (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static std::string from_hex(const std::string &h) {
    std::string s;
    for (size_t i = 0; i + 1 < h.size(); i += 2) s.push_back((char)std::stoi(h.substr(i, 2), nullptr, 16));
    return s;
}

static std::string to_hex(const std::string &s) {
    static const char *d = "0123456789abcdef";
    std::string h;
    for (unsigned char c : s) { h.push_back(d[c >> 4]); h.push_back(d[c & 15]); }
    return h;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPTS.txt STRIDE TOP_K N_NEW N_THREADS\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    const int stride = atoi(argv[3]), top_k = atoi(argv[4]), n_new = atoi(argv[5]),
              n_threads = atoi(argv[6]);
    const int n_ctx = 512;

    std::vector<std::string> rendered;
    std::vector<std::vector<llama_token>> prompts;
    {
        std::ifstream in(argv[2]);
        if (!in) { fprintf(stderr, "cannot read %s\n", argv[2]); return 1; }
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            std::istringstream ss(line);
            std::string hex;
            ss >> hex;
            rendered.push_back(from_hex(hex));
            std::vector<llama_token> ids;
            long v;
            while (ss >> v) ids.push_back((llama_token)v);
            prompts.push_back(ids);
        }
    }

    llama_log_set(quiet_log, nullptr);
    llama_backend_init();

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", model_path); return 1; }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_ubatch = n_ctx;
    cp.n_seq_max = 1;
    cp.n_threads = n_threads;
    cp.n_threads_batch = n_threads;
    cp.no_perf = true;
    llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create a context\n"); return 1; }

    printf("I %s\n", llama_print_system_info());
    printf("V %d\n", n_vocab);

    llama_batch batch = llama_batch_init(n_ctx, 0, 1);
    auto fill = [&](const llama_token *toks, int n, int pos0) {
        batch.n_tokens = n;
        for (int i = 0; i < n; i++) {
            batch.token[i] = toks[i];
            batch.pos[i] = pos0 + i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = 1;  // an output at every position
        }
    };
    auto argmax_margin = [&](const float *l, float *margin) {
        int best = 0;
        for (int j = 1; j < n_vocab; j++) if (l[j] > l[best]) best = j;  // first max wins
        float second = -INFINITY;
        for (int j = 0; j < n_vocab; j++) if (j != best && l[j] > second) second = l[j];
        *margin = l[best] - second;
        return best;
    };

    std::vector<int> order(n_vocab);
    for (size_t pi = 0; pi < prompts.size(); pi++) {
        const std::vector<llama_token> &ids = prompts[pi];
        const int n = (int)ids.size();
        if (n == 0 || n + n_new > n_ctx) { fprintf(stderr, "prompt %zu: bad length %d\n", pi, n); return 1; }
        printf("P %zu %d\n", pi, n);

        std::vector<llama_token> tk(rendered[pi].size() + 16);
        int nt = llama_tokenize(vocab, rendered[pi].data(), (int)rendered[pi].size(), tk.data(),
                                (int)tk.size(), /*add_special=*/false, /*parse_special=*/true);
        tk.resize(nt > 0 ? nt : 0);
        printf("C %d", (int)(tk == ids));
        for (llama_token t : tk) printf(" %d", t);
        printf("\n");

        llama_kv_cache_clear(ctx);
        fill(ids.data(), n, 0);
        if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "prompt %zu: llama_decode failed\n", pi); return 1; }
        for (int p = 0; p < n; p++) {
            const float *l = llama_get_logits_ith(ctx, p);
            printf("L %d", p);
            for (int j = 0; j < n_vocab; j += stride) printf(" %.9g", l[j]);
            printf("\n");
            std::iota(order.begin(), order.end(), 0);
            std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](int a, int b) {
                return l[a] > l[b] || (l[a] == l[b] && a < b);
            });
            printf("T %d", p);
            for (int k = 0; k < top_k; k++) printf(" %d:%.9g", order[k], l[order[k]]);
            printf("\n");
        }

        std::vector<llama_token> greedy;
        std::vector<float> margins;
        std::vector<float> last(llama_get_logits_ith(ctx, n - 1), llama_get_logits_ith(ctx, n - 1) + n_vocab);
        for (int step = 0; step < n_new; step++) {
            float margin;
            llama_token next = argmax_margin(last.data(), &margin);
            greedy.push_back(next);
            margins.push_back(margin);
            if (step + 1 == n_new) break;
            fill(&next, 1, n + step);
            if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "prompt %zu step %d: llama_decode failed\n", pi, step); return 1; }
            const float *l = llama_get_logits_ith(ctx, 0);
            last.assign(l, l + n_vocab);
        }
        printf("G");
        for (llama_token t : greedy) printf(" %d", t);
        printf("\nM");
        for (float m : margins) printf(" %.9g", m);
        std::string text;
        char buf[256];
        for (llama_token t : greedy) {
            int k = llama_token_to_piece(vocab, t, buf, sizeof buf, 0, /*special=*/true);
            if (k > 0) text.append(buf, k);
        }
        printf("\nX %s\n", to_hex(text).c_str());
        fflush(stdout);
    }

    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
