/**
 * Registers tfjs-core's gradient definitions (a build-time bundle, see scripts/bundle-gradients.mjs):
 * tfjs-core's Node build leaves them out, so without this `tf.grad` of any op fails.
 */
import '../gradients/register_all_gradients.js';
