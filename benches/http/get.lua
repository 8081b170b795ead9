-- GET with the partner's bearer token (TOKEN). The path is wrk's URL.
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/?.lua"
require "report"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
