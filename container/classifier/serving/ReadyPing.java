/*
 * GET /ping for multi-model-server that tells the truth: 200 once every model has at least one worker
 * that has loaded it, 503 before (MMS's own /ping answers 200 as soon as the port is bound, even while
 * the workers are still loading the model, and even when they have all failed).
 *
 * An MMS endpoint plugin (model-server.jar's servingsdk): `classifier.serving.mms_plugin` compiles it
 * when the server starts (with the JRE's own jdk.compiler module, no JDK needed) and `serve` puts the
 * jar on MMS's `plugins_path`. Answered by MMS's Java front end: never queued behind inference requests.
 */
package classifier.serving;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;

import software.amazon.ai.mms.servingsdk.Context;
import software.amazon.ai.mms.servingsdk.Model;
import software.amazon.ai.mms.servingsdk.ModelServerEndpoint;
import software.amazon.ai.mms.servingsdk.Worker;
import software.amazon.ai.mms.servingsdk.annotations.Endpoint;
import software.amazon.ai.mms.servingsdk.annotations.helpers.EndpointTypes;
import software.amazon.ai.mms.servingsdk.http.Request;
import software.amazon.ai.mms.servingsdk.http.Response;

@Endpoint(urlPattern = "ping", endpointType = EndpointTypes.INFERENCE,
          description = "200 once every model has a worker that has loaded it, else 503")
public class ReadyPing extends ModelServerEndpoint {
    @Override
    public void doGet(Request request, Response response, Context context) throws IOException {
        Map<String, Model> models = context.getModels();
        boolean ready = !models.isEmpty();
        int workers = 0;
        int loaded = 0;
        for (Model model : models.values()) {
            int modelLoaded = 0;
            for (Worker worker : model.getModelWorkers()) {
                workers++;
                if (worker.isRunning()) {  // WorkerState.WORKER_MODEL_LOADED
                    modelLoaded++;
                }
            }
            loaded += modelLoaded;
            ready &= modelLoaded > 0;
        }
        String body;
        if (ready) {
            response.setStatus(200);
            body = String.format("{\"status\": \"Healthy\", \"workers\": %d, \"loaded\": %d}", workers, loaded);
        } else {
            response.setStatus(503, "Service Unavailable");
            body = String.format("{\"status\": \"Unhealthy\", \"workers\": %d, \"loaded\": %d, "
                    + "\"message\": \"the model is not loaded yet\"}", workers, loaded);
        }
        response.setContentType("application/json");
        OutputStream out = response.getOutputStream();
        out.write(body.getBytes(StandardCharsets.UTF_8));
        out.flush();
    }
}
